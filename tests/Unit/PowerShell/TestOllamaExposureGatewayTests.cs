using System.Diagnostics;
using System.Management.Automation;
using System.Text.Json;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Test-OllamaExposure and the OllamaContinuity gateway, as an admin meets them: the real gateway process started by
/// Start-AiGateway with a fake Ollama behind it, audited on this machine (the live local audit reads /proc) and probed
/// over loopback; a gateway-like stand-in that answers without a token; a stale gateway.json. They set
/// OLLAMACONTINUITY_STATE_DIR, so they run in the serial collection.
/// </summary>
[Collection("Process environment")]
public sealed class TestOllamaExposureGatewayTests : GatewaySessionTest
{
    public TestOllamaExposureGatewayTests()
        : base("ps-audit-gateway")
    {
    }

    private string StateFile => Path.Combine(StateDir, "User", "gateway.json");

    private static string P(PSObject o, string name) => o.Properties[name].Value?.ToString() ?? "";

    private static PSObject Row(IEnumerable<PSObject> rows, string check) => Assert.Single(rows, r => P(r, "Check") == check);

    /// <summary>The row of one gateway: this machine may run other gateways (other sessions' tests), each with its own rows.</summary>
    private static PSObject Row(IEnumerable<PSObject> rows, string check, int port) => Assert.Single(rows, r => P(r, "Check") == check && (int)r.Properties["Port"].Value == port);

    [SkippableFact]
    public void The_live_audit_finds_the_real_gateway_by_its_process_and_the_scan_of_loopback_recognises_it()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the local audit reads the gateway's sockets from Linux /proc");
        var started = Assert.Single(Session.Invoke("Start-AiGateway -BindAddress 127.0.0.2 -Port 0 -CloudUri $cloud -CloudApiKey $k -OllamaUri $ollama",
            new Dictionary<string, object?> { ["cloud"] = Cloud.ChatUri.ToString(), ["ollama"] = Ollama.BaseUri.ToString(), ["k"] = Secure("sk-test") }));
        Assert.False(Session.HadErrors, string.Join("; ", Session.Streams!.Error));
        var pid = (int)started.Properties["ProcessId"].Value;
        var port = (int)started.Properties["Port"].Value;

        var audit = Session.Invoke("Test-OllamaExposure");
        var bind = Row(audit, "GatewayBind", port);
        Assert.Equal("Pass", P(bind, "Status"));
        Assert.Contains($"loopback only (127.0.0.2:{port}; process {pid}, OllamaContinuity.Gateway.dll --bind 127.0.0.2 --port 0", P(bind, "Detail"), StringComparison.Ordinal);
        Assert.Contains("gateway.json agrees", P(bind, "Detail"), StringComparison.Ordinal);
        var auth = Row(audit, "GatewayAuth", port);
        Assert.Equal("Pass", P(auth, "Status"));
        Assert.Contains($"through 127.0.0.2:{port}, answered HTTP 401 with the gateway's marker", P(auth, "Detail"), StringComparison.Ordinal);
        Assert.Equal("NotApplicable", P(Row(audit, "GatewayFirewall", port), "Status"));
        Assert.Contains("gateway listens on loopback only", P(Row(audit, "Authentication"), "Detail"), StringComparison.Ordinal);

        // The network probe of 127.0.0.0/30: the gateway on .2 is recognised by its answers, and asks for a token.
        var scan = Session.Invoke("Test-OllamaExposure 127.0.0.0/30 -Port $port -TimeoutMs 2000", new Dictionary<string, object?> { ["port"] = port });
        var found = Assert.Single(scan);
        Assert.Equal(("NetworkExposure", "Pass", "127.0.0.2"), (P(found, "Check"), P(found, "Status"), P(found, "Target")));
        Assert.Contains("An OllamaContinuity gateway answers on 127.0.0.2:" + port + " and asks for a client token (GET /api/tags without one: HTTP 401)", P(found, "Detail"), StringComparison.Ordinal);
        Assert.True((bool)Assert.Single(Session.Invoke("Test-OllamaExposure 127.0.0.2 -Port $port -Quiet", new Dictionary<string, object?> { ["port"] = port })).BaseObject);
    }

    [SkippableFact]
    public async Task A_gateway_like_stand_in_that_answers_without_a_token_fails_GatewayAuth()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the local audit reads the gateway's sockets from Linux /proc");
        // gateway.json names this test process, which owns the fake Ollama's socket: a server in the gateway's place
        // that lists its models to anyone.
        using var self = Process.GetCurrentProcess();
        Directory.CreateDirectory(Path.GetDirectoryName(StateFile)!);
        await File.WriteAllTextAsync(StateFile, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["pid"] = Environment.ProcessId, ["url"] = Ollama.BaseUri.ToString().TrimEnd('/'), ["bind"] = "127.0.0.1", ["port"] = Ollama.Port,
            ["processStartTime"] = self.StartTime.ToUniversalTime(),
        }));

        var audit = Session.Invoke("Test-OllamaExposure");

        var auth = Row(audit, "GatewayAuth", Ollama.Port);
        Assert.Equal("Fail", P(auth, "Status"));
        Assert.Contains("without a client token (HTTP 200, 1 model(s) listed: llama3.1:8b)", P(auth, "Detail"), StringComparison.Ordinal);
        Assert.Contains($"named by {StateFile}, which owns the socket on its port", P(Row(audit, "GatewayBind", Ollama.Port), "Detail"), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_stale_gateway_json_with_no_process_passes_nothing()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the local audit reads the gateway's sockets from Linux /proc");
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await gone.WaitForExitAsync();
        Directory.CreateDirectory(Path.GetDirectoryName(StateFile)!);
        // Something listens on its port (never accepted: any connection the audit made would be pending there).
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        await File.WriteAllTextAsync(StateFile, $$"""{"pid":{{gone.Id}},"url":"http://127.0.0.1:{{port}}","bind":"127.0.0.1","port":{{port}},"processStartTime":"2026-01-01T00:00:00Z"}""");

        var audit = Session.Invoke("Test-OllamaExposure");

        Assert.DoesNotContain(audit, r => P(r, "Check") is "GatewayAuth" or "GatewayFirewall" && (int)r.Properties["Port"].Value == port);
        var bind = Row(audit, "GatewayBind", port);
        Assert.Equal("NotApplicable", P(bind, "Status"));
        Assert.Contains("stale state file, nothing is credited to it", P(bind, "Detail"), StringComparison.Ordinal);
        Assert.DoesNotContain($":{port}", P(Row(audit, "Authentication"), "Detail"), StringComparison.Ordinal);
        Assert.False(listener.Pending(), "the audit connected to the stale file's port");
        listener.Stop();
    }

    [Fact]
    public void An_offline_root_never_reads_this_machine_s_gateway_json()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(StateFile)!);
        File.WriteAllText(StateFile, $$"""{"pid":{{Environment.ProcessId}},"url":"http://127.0.0.1:{{Ollama.Port}}","port":{{Ollama.Port}}}""");
        var root = TestPaths.New("ps-audit-gateway-root");
        Directory.CreateDirectory(Path.Combine(root, "proc/net"));

        var audit = Session.Invoke("Test-OllamaExposure -Root $root", new Dictionary<string, object?> { ["root"] = root });

        Assert.Equal(["BindAddress", "Firewall", "Origins", "WebUI", "ServiceUser", "Authentication", "Logs", "DiskEncryption"], audit.Select(r => P(r, "Check")));
    }
}
