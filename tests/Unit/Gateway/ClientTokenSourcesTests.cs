using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// Where the gateway's client tokens come from: a file (plain or SHA-256 hashes), its standard input
/// (--tokens-stdin, how Start-AiGateway hands over tokens read from SecretManagement), or both.
/// </summary>
public sealed class ClientTokenSourcesTests
{
    private const string StdinToken = "oc_stdin_token_5c1e0a9b7d3f2468";
    private const string OtherToken = "oc_other_token_5c1e0a9b7d3f2468";

    private static string GatewayDll => typeof(GatewayOptions).Assembly.Location;

    /// <summary>The real gateway process with --tokens-stdin and the given extra arguments; stdin is written, then closed.</summary>
    private static Process StartGateway(byte[] stdin, params string[] args)
    {
        var psi = new ProcessStartInfo(GatewayControl.DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(GatewayDll);
        foreach (var a in new[] { "--port", "0", "--tokens-stdin" }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }

        // A backend that is never called (only /v1/models and /healthz are asked for).
        psi.Environment["OLLAMA_URL"] = "http://127.0.0.1:9";
        var p = Process.Start(psi)!;
        p.StandardInput.BaseStream.Write(stdin);
        p.StandardInput.Close();
        return p;
    }

    private static async Task<HttpStatusCode> ModelsAsync(HttpClient http, string url, string? token)
    {
        using var m = new HttpRequestMessage(HttpMethod.Get, url + "/v1/models");
        if (token is not null)
        {
            m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var r = await http.SendAsync(m);
        return r.StatusCode;
    }

    [Fact]
    public async Task Tokens_from_stdin_are_accepted_and_a_wrong_or_missing_token_gets_401()
    {
        var dir = TestPaths.New("gateway-stdin");
        Directory.CreateDirectory(dir);
        var doc = Encoding.UTF8.GetBytes($$"""{"tokens":[{"name":"app","token":"{{StdinToken}}","workflow":"billing"}]}""");
        using var p = StartGateway(doc, "--log-path", Path.Combine(dir, "requests.jsonl"));
        try
        {
            var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            if (line is null || !line.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                Assert.Fail($"The gateway did not listen: {line} {(p.WaitForExit(5000) ? await p.StandardError.ReadToEndAsync() : "")}");
            }

            var url = line!["LISTENING ".Length..];
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
            Assert.Equal(HttpStatusCode.OK, await ModelsAsync(http, url, StdinToken));
            Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(http, url, OtherToken));
            Assert.Equal(HttpStatusCode.Unauthorized, await ModelsAsync(http, url, null));
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    public static TheoryData<string, string, string> Malformed => new()
    {
        { "cut JSON", """{"tokens":[{"name":"app","token":"oc_leak_5c1e0a9b7d3f2468""", "not valid JSON (line 1" },
        { "not JSON at all", "oc_leak_5c1e0a9b7d3f2468", "not valid JSON" },
        { "empty", "", "was empty" },
        { "no tokens array", """{"tokenz":[{"token":"oc_leak_5c1e0a9b7d3f2468"}]}""", "no \"tokens\" array" },
        { "an empty array", """{"tokens":[]}""", "hold no token" },
        { "a short token", """{"tokens":[{"name":"app","token":"oc_leak_5c1e"}]}""", "shorter than 20 characters" },
        { "token and hash", """{"tokens":[{"name":"app","token":"oc_leak_5c1e0a9b7d3f2468","sha256":"00"}]}""", "both \"token\" and \"sha256\"" },
        { "a bad hash", """{"tokens":[{"name":"app","sha256":"oc_leak_5c1e0a9b7d3f2468"}]}""", "not 64 hexadecimal digits" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task Malformed_stdin_is_refused_at_start_with_a_clear_message_that_never_quotes_it(string what, string input, string expected)
    {
        using var p = StartGateway(Encoding.UTF8.GetBytes(input));
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(30_000), what);
        var said = await stderr + await stdout;
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("standard input (--tokens-stdin)", said);
        Assert.Contains(expected, said);
        Assert.DoesNotContain("oc_leak", said);
        Assert.DoesNotContain("LISTENING", said);
    }

    [Fact]
    public async Task A_hash_only_tokens_file_serves_the_token_and_holds_no_plain_token()
    {
        var file = Path.Combine(TestPaths.New("gateway-hashed"), "tokens.json");
        GatewayClientTokens.WriteHashedFile(file, [new GatewayClientToken { Name = "svc", Token = StdinToken, Workflow = "billing" }]);
        Assert.DoesNotContain(StdinToken, await File.ReadAllTextAsync(file));
        Assert.Contains("\"sha256\"", await File.ReadAllTextAsync(file));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        await using var g = await GatewayHarness.StartAsync(configure: o => o with { TokensFile = file });
        var svc = ClientTokens.Load(file).Find(StdinToken);
        Assert.Equal("svc", svc?.Name);
        Assert.Equal("billing", svc?.Workflow);
        using var ok = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new("Bearer", StdinToken) } };
        Assert.Equal(HttpStatusCode.OK, (await g.SendAsync(ok)).Response.StatusCode);
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new("Bearer", OtherToken) } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await g.SendAsync(wrong)).Response.StatusCode);
    }

    [Fact]
    public async Task A_file_and_stdin_combine_and_a_client_name_given_twice_is_refused()
    {
        var file = Path.Combine(TestPaths.New("gateway-both"), "tokens.json");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllTextAsync(file, $$"""{"tokens":[{"name":"from-file","token":"{{OtherToken}}"}]}""");
        var options = GatewayOptions.Parse(["--tokens-file", file, "--tokens-stdin"]);
        Assert.True(options.TokensFromStdin);

        var both = options.LoadTokens(() => new MemoryStream(Encoding.UTF8.GetBytes($$"""{"tokens":[{"name":"from-stdin","token":"{{StdinToken}}"}]}""")));
        Assert.Equal(2, both.Count);
        Assert.Equal("from-file", both.Find(OtherToken)?.Name);
        Assert.Equal("from-stdin", both.Find(StdinToken)?.Name);
        Assert.Null(both.Find("oc_nobody_5c1e0a9b7d3f2468"));

        var clash = Assert.Throws<InvalidOperationException>(() =>
            options.LoadTokens(() => new MemoryStream(Encoding.UTF8.GetBytes($$"""{"tokens":[{"name":"from-file","token":"{{StdinToken}}"}]}"""))));
        Assert.Contains("'from-file' is given more than once", clash.Message);
        Assert.DoesNotContain(StdinToken, clash.Message);
    }

    [Fact]
    public void Without_a_file_or_stdin_the_gateway_refuses_to_start()
    {
        var e = Assert.Throws<ArgumentException>(() => GatewayOptions.Parse([]).LoadTokens(() => throw new InvalidOperationException("stdin must not be read")));
        Assert.Contains("--tokens-file and/or --tokens-stdin", e.Message);
        Assert.False(GatewayOptions.Parse(["--tokens-file", "x"]).TokensFromStdin);
    }
}
