using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Gateway.Tests;

/// <summary>
/// The owner-only control socket (gateway.sock beside gateway.json): status, metrics and health without a client token
/// for the gateway's own user, never a chat endpoint. The real gateway process, over a fake Ollama.
/// </summary>
public sealed class ControlSocketTests
{
    private const string Token = "oc_control_socket_token_0123456789ab";
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static string GatewayDll => typeof(GatewayOptions).Assembly.Location;

    private sealed record Running(Process Process, string Url, string StateFile, string Socket);

    private static async Task<Running> StartAsync(string dir, FakeAiServer ollama)
    {
        var tokens = Path.Combine(dir, "tokens.json");
        await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"app","token":"{{Token}}"}]}""");
        var state = Path.Combine(dir, "gateway.json");
        var psi = new ProcessStartInfo(GatewayControl.DotnetHost()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { GatewayDll, "--port", "0", "--tokens-file", tokens, "--state-file", state })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["OLLAMA_URL"] = ollama.BaseUri.ToString().TrimEnd('/');
        psi.Environment.Remove("CLOUD_API_KEY");
        var p = Process.Start(psi)!;
        var listening = await GatewayProcess.Listening(p).WaitAsync(TimeSpan.FromSeconds(60));
        return new Running(p, listening, state, Path.Combine(dir, "gateway.sock"));
    }

    private static async Task StopAsync(Process p)
    {
        if (!p.HasExited)
        {
            Assert.Equal(0, NetNs.RunProcess(["kill", "-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ExitCode);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
        }
    }

    private static StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");

    [SkippableFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task The_socket_is_owner_only_serves_status_and_metrics_without_a_token_and_refuses_every_chat_endpoint()
    {
        Skip.If(OperatingSystem.IsWindows(), "The control socket is Linux and macOS only.");
        var dir = TestPaths.New("ctlsock");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, OwnerOnlyDir | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var g = await StartAsync(dir, ollama);
        try
        {
            // Owner-only socket in an owner-only directory, named in the state file.
            Assert.True(File.Exists(g.Socket), "gateway.sock exists beside gateway.json");
            Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(g.Socket));
            Assert.Equal(OwnerOnlyDir, File.GetUnixFileMode(dir));
            using (var doc = JsonDocument.Parse(await File.ReadAllBytesAsync(g.StateFile)))
            {
                Assert.Equal(g.Socket, doc.RootElement.GetProperty("controlSocket").GetString());
            }

            // One chat over TCP with the application's token: the backend answers once.
            using var tcp = new HttpClient { BaseAddress = new Uri(g.Url) };
            using (var m = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("""{"model":"ollamacontinuity","messages":[{"role":"user","content":"hi"}]}""") })
            {
                m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
                using var r = await tcp.SendAsync(m);
                Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            }

            Assert.Equal(1, ollama.Hits);
            // The same status over TCP needs the token.
            using (var r = await tcp.GetAsync("/v1/gateway/status"))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            }

            using var control = GatewayControl.ControlSocketClient(g.Socket);
            using (var r = await control.GetAsync("/v1/gateway/status"))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                Assert.Equal(1, doc.RootElement.GetProperty("requests").GetInt64());
                Assert.Equal(g.Process.Id, doc.RootElement.GetProperty("pid").GetInt32());
            }

            using (var r = await control.GetAsync("/metrics"))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                Assert.Contains("# TYPE", await r.Content.ReadAsStringAsync());
            }

            using (var r = await control.GetAsync("/healthz"))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            }

            // Every chat endpoint (and anything else) is refused on the socket, with or without a token, and nothing reaches the backend.
            foreach (var path in new[] { "/v1/chat/completions", "/v1/messages", "/api/chat", "/api/generate" })
            {
                foreach (var token in new[] { null, Token })
                {
                    using var m = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json("""{"model":"ollamacontinuity","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"prompt":"hi"}""") };
                    if (token is not null)
                    {
                        m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    }

                    using var r = await control.SendAsync(m);
                    Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
                    Assert.StartsWith("application/json", r.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
                    Assert.Contains("control socket serves only GET", await r.Content.ReadAsStringAsync());
                }
            }

            foreach (var path in new[] { "/v1/models", "/api/tags" })
            {
                using var r = await control.GetAsync(path);
                Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
            }

            Assert.Equal(1, ollama.Hits);

            // Get-AiGateway's query, with no token at all: the counts come over the socket.
            var status = await GatewayControl.QueryAsync(new GatewayStatus
            {
                Running = true, Url = g.Url, ProcessId = g.Process.Id, ControlSocket = g.Socket, StateFile = g.StateFile,
            }, token: null, CancellationToken.None);
            Assert.Equal("Healthy", status.Health);
            Assert.Equal(1, status.Requests);
            Assert.Equal(0, status.InFlight);

            // A clean stop removes the socket (and the state file).
            await StopAsync(g.Process);
            Assert.Equal(0, g.Process.ExitCode);
            Assert.False(File.Exists(g.Socket), "the socket is removed after a clean stop");
            Assert.False(File.Exists(g.StateFile));
        }
        finally
        {
            if (!g.Process.HasExited)
            {
                g.Process.Kill(entireProcessTree: true);
            }

            g.Process.Dispose();
        }
    }

    [SkippableFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_stale_socket_file_from_a_killed_gateway_is_replaced_at_start()
    {
        Skip.If(OperatingSystem.IsWindows(), "The control socket is Linux and macOS only.");
        var dir = TestPaths.New("ctlsock-stale");
        Directory.CreateDirectory(dir);
        var socketPath = Path.Combine(dir, "gateway.sock");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");

        // A gateway killed outright (SIGKILL) cannot remove its socket: the file stays, with nobody listening on it.
        var killed = await StartAsync(dir, ollama);
        killed.Process.Kill(entireProcessTree: true);
        await killed.Process.WaitForExitAsync();
        killed.Process.Dispose();
        Assert.True(File.Exists(socketPath), "a killed gateway leaves its socket file");
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            Assert.ThrowsAny<SocketException>(() => probe.Connect(new UnixDomainSocketEndPoint(socketPath)));
        }

        var g = await StartAsync(dir, ollama);
        try
        {
            Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(g.Socket));
            using var control = GatewayControl.ControlSocketClient(g.Socket);
            using var r = await control.GetAsync("/v1/gateway/status");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.Equal(g.Process.Id, doc.RootElement.GetProperty("pid").GetInt32());
        }
        finally
        {
            await StopAsync(g.Process);
            g.Process.Dispose();
        }

        Assert.False(File.Exists(socketPath));
    }

    [SkippableFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_control_socket_it_cannot_make_leaves_the_gateway_serving_and_is_not_named_in_the_state_file()
    {
        Skip.If(OperatingSystem.IsWindows(), "The control socket is Linux and macOS only.");
        var dir = TestPaths.New("ctlsock-blocked");
        Directory.CreateDirectory(Path.Combine(dir, "gateway.sock"));   // a directory where the socket would go
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        var g = await StartAsync(dir, ollama);
        try
        {
            using (var doc = JsonDocument.Parse(await File.ReadAllBytesAsync(g.StateFile)))
            {
                Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("controlSocket").ValueKind);
            }

            using var tcp = new HttpClient { BaseAddress = new Uri(g.Url) };
            using var m = new HttpRequestMessage(HttpMethod.Get, "/v1/gateway/status");
            m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            using var r = await tcp.SendAsync(m);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        finally
        {
            await StopAsync(g.Process);
            g.Process.Dispose();
        }
    }
}
