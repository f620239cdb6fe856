namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Test-OllamaExposure's Firewall check reads the firewall through the firewall engine (what Get-OllamaFirewallRule
/// reads) on a live host, and never for an offline -Root audit. Sets OLLAMA_HOST and the process-wide firewall
/// environment: runs in the serial collection. The engine's runner is a scripted one, so no tool runs on the host.
/// </summary>
[Collection("Process environment")]
public sealed class ExposureFirewallWiringTests : IDisposable
{
    private readonly ModuleSession _s = new();
    private readonly string? _savedHost = Environment.GetEnvironmentVariable("OLLAMA_HOST");

    public ExposureFirewallWiringTests()
    {
        _s.Invoke(FirewallSeam.Engine + """
            $runner = $runnerType::new()
            $null = $runner.Answer('nft', 1, '', 'Error: No such file or directory')
            $fe = $envType::new()
            $fe.Runner = $runner
            $fe.Platform = 'Linux'
            $envType::Default = $fe
            """);
        Assert.Empty(_s.Streams!.Error);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("OLLAMA_HOST", _savedHost);
        _s.Invoke(FirewallSeam.Reset);
        _s.Dispose();
    }

    [Fact]
    public void A_live_audit_bound_beyond_loopback_asks_the_firewall_engine()
    {
        Environment.SetEnvironmentVariable("OLLAMA_HOST", "0.0.0.0:11434");
        var findings = _s.Invoke("Test-OllamaExposure -Port 11434 | Where-Object Check -eq 'Firewall'");
        var firewall = Assert.Single(findings);
        Assert.NotEqual("NotApplicable", firewall.Properties["Status"].Value);
        var asked = _s.Invoke("$runner.CommandLines").Select(o => o.ToString()).ToArray();
        Assert.NotEmpty(asked);
        Assert.All(asked, c => Assert.DoesNotMatch(@"\b(-I|-A|-D|add|delete|insert|prepend|--add|--remove|-f)\b", c));
    }

    [Fact]
    public void An_offline_audit_of_an_image_never_asks_the_live_firewall()
    {
        Environment.SetEnvironmentVariable("OLLAMA_HOST", "0.0.0.0:11434");
        var root = OllamaContinuity.TestSupport.TestPaths.New("offline");
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        _s.Invoke("$null = Test-OllamaExposure -Root $root -Port 11434", new Dictionary<string, object?> { ["root"] = root });
        Assert.Empty(_s.Invoke("$runner.CommandLines"));
    }
}
