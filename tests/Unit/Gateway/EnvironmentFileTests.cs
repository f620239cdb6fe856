using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// --environment-file: how the Windows service gets its backend settings and cloud key (gateway.env in the data folder,
/// not the registry). The real gateway process reads the file Install-AiGateway renders; its values win over the
/// process environment; a missing or malformed file stops it with exit code 2 and never repeats a value.
/// </summary>
public sealed class EnvironmentFileTests : IAsyncLifetime
{
    private const string Token = "oc_environment_file_token_0123456789";
    private readonly string _dir = TestPaths.New("envfile");

    private static string GatewayDll => typeof(GatewayOptions).Assembly.Location;

    private string TokensFile => Path.Combine(_dir, "tokens.json");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        await File.WriteAllTextAsync(TokensFile, $$"""{"tokens":[{"name":"svc","token":"{{Token}}"}]}""");
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }

    [Fact]
    public async Task The_gateway_process_reads_the_backends_from_the_file_and_its_values_win_over_the_environment()
    {
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var envFile = Path.Combine(_dir, "gateway.env");
        // Exactly what Install-AiGateway writes on Windows, with an unknown key and an awkward value beside.
        await File.WriteAllTextAsync(envFile, GatewayServicePlanner.RenderEnvironmentFile(new Dictionary<string, string>
        {
            ["OLLAMA_URL"] = ollama.BaseUri.ToString(),
            ["OLLAMA_MODEL"] = "llama3.1:8b",
            ["SOMETHING_ELSE"] = "it's \"odd\" $HOME \\ = 🔑",
        }));

        // The process environment points Ollama at a port where nothing listens: the file must win.
        using var p = Start(["--environment-file", envFile], env => env["OLLAMA_URL"] = "http://127.0.0.1:9");
        try
        {
            var url = await GatewayProcess.Listening(p).WaitAsync(TimeSpan.FromSeconds(60));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            using var request = new HttpRequestMessage(HttpMethod.Post, url + "/v1/chat/completions")
            {
                Content = new StringContent("""{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
            Assert.Equal(1, ollama.Hits);
            Assert.Contains("\"choices\"", body, StringComparison.Ordinal);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }
    }

    [Theory]
    [InlineData("CLOUD_API_KEY=sk-test-SECRET-unquoted-0123456789\n")]
    [InlineData("OLLAMA_URL='http://127.0.0.1:11434'\nCLOUD_API_KEY='sk-test-SECRET-unterminated\n")]
    [InlineData("CLOUD_API_KEY=\"sk-test-SECRET-$(id)\"\n")]
    public async Task A_malformed_file_is_refused_with_exit_code_2_naming_the_line_never_the_value(string content)
    {
        var envFile = Path.Combine(_dir, "gateway.env");
        await File.WriteAllTextAsync(envFile, content);
        var (code, output) = await RunToExit(["--environment-file", envFile]);
        Assert.Equal(2, code);
        Assert.Contains("--environment-file", output, StringComparison.Ordinal);
        Assert.Contains(envFile, output, StringComparison.Ordinal);
        Assert.Contains("CLOUD_API_KEY", output, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRET", output, StringComparison.Ordinal);
        Assert.DoesNotContain("LISTENING", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_file_a_folder_and_an_oversized_file_are_refused_with_exit_code_2()
    {
        var missing = await RunToExit(["--environment-file", Path.Combine(_dir, "none.env")]);
        Assert.Equal(2, missing.Code);
        Assert.Contains("does not exist", missing.Output, StringComparison.Ordinal);

        var folder = await RunToExit(["--environment-file", _dir]);
        Assert.Equal(2, folder.Code);
        Assert.Contains("it is a folder", folder.Output, StringComparison.Ordinal);

        var big = Path.Combine(_dir, "big.env");
        await File.WriteAllTextAsync(big, "# " + new string('x', GatewayServicePlanner.MaxEnvironmentFileBytes) + "\nCLOUD_API_KEY='sk-test-SECRET'\n");
        var large = await RunToExit(["--environment-file", big]);
        Assert.Equal(2, large.Code);
        Assert.Contains("larger than 64 KiB", large.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRET", large.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_compose_the_file_over_the_environment_and_without_a_file_are_the_environment()
    {
        var envFile = Path.Combine(_dir, "compose.env");
        File.WriteAllText(envFile, "OLLAMA_URL='http://from-file'\n");
        var environment = new Dictionary<string, string?> { ["OLLAMA_URL"] = "http://from-env", ["CLOUD_MODEL"] = "env-model" };
        var settings = (GatewayOptions.Parse(["--environment-file", envFile]) with { }).Settings(n => environment.GetValueOrDefault(n));
        Assert.Equal("http://from-file", settings("OLLAMA_URL"));
        Assert.Equal("env-model", settings("CLOUD_MODEL"));
        Assert.Null(settings("CLOUD_API_KEY"));
        Assert.Equal("http://from-env", new GatewayOptions().Settings(n => environment.GetValueOrDefault(n))("OLLAMA_URL"));
    }

    private Process Start(IEnumerable<string> extra, Action<IDictionary<string, string?>>? environment = null)
    {
        var psi = new ProcessStartInfo(GatewayControl.DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { GatewayDll, "--port", "0", "--tokens-file", TokensFile, "--log-path", Path.Combine(_dir, "requests.jsonl") }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        // Nothing of the machine's own backends: only what the test gives.
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("CLOUD_", StringComparison.OrdinalIgnoreCase) || k.StartsWith("OLLAMA_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            psi.Environment.Remove(name);
        }

        psi.Environment["HOME"] = _dir;
        psi.Environment["XDG_STATE_HOME"] = _dir;
        psi.Environment["LOCALAPPDATA"] = _dir;
        environment?.Invoke(psi.Environment);
        return Process.Start(psi)!;
    }

    private async Task<(int Code, string Output)> RunToExit(IEnumerable<string> extra)
    {
        using var p = Start(extra);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        finally
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }
        }

        return (p.ExitCode, await stdout + await stderr);
    }
}
