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

    /// <summary>Issue 10 item 6: an inactive ufw beside the module's active nftables ruleset was chosen, and the audit said Fail.</summary>
    [Fact]
    public void An_inactive_ufw_beside_the_modules_nftables_ruleset_audits_as_restricted()
    {
        Environment.SetEnvironmentVariable("OLLAMA_HOST", "0.0.0.0:11434");
        const string json = """{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}""";
        _s.Invoke("""
            $runner = $runnerType::new()
            $null = $runner.Answer('firewall-cmd', 252, '', 'not running')
            $null = $runner.Answer('ufw status', 0, "Status: inactive`n")
            $null = $runner.Answer('nft list tables', 0, "table inet ollama_guard_11434`n")
            $null = $runner.Answer('nft -j list table inet ollama_guard_11434', 0, $json)
            $null = $runner.Answer('iptables -w -S', 0, "-P INPUT ACCEPT`n")
            $envType::Default.Runner = $runner
            """, new Dictionary<string, object?> { ["json"] = json });
        var firewall = Assert.Single(_s.Invoke("Test-OllamaExposure -Port 11434 | Where-Object Check -eq 'Firewall'"));
        Assert.Equal("Pass", firewall.Properties["Status"].Value);
        Assert.Contains("Nftables", (string)firewall.Properties["Detail"].Value);
        Assert.Contains("ufw is installed but inactive", (string)firewall.Properties["Detail"].Value);
    }

    [Fact]
    public void FirewallBackend_audits_the_named_firewall_without_detecting()
    {
        Environment.SetEnvironmentVariable("OLLAMA_HOST", "0.0.0.0:11434");
        _s.Invoke("""
            $runner = $runnerType::new()
            $null = $runner.Answer('iptables -w -S', 1, '', 'iptables: No chain/target/match by that name.')
            $null = $runner.Answer('ip6tables -w -S', 1, '', 'ip6tables: No chain/target/match by that name.')
            $null = $runner.Answer('iptables -w -C', 1)
            $null = $runner.Answer('ip6tables -w -C', 1)
            $envType::Default.Runner = $runner
            """);
        var firewall = Assert.Single(_s.Invoke("Test-OllamaExposure -Port 11434 -FirewallBackend Iptables | Where-Object Check -eq 'Firewall'"));
        Assert.Equal("Fail", firewall.Properties["Status"].Value);
        Assert.Contains("-FirewallBackend Iptables", (string)firewall.Properties["Detail"].Value);
        var asked = _s.Invoke("$runner.CommandLines").Select(o => o.ToString()!).ToArray();
        Assert.NotEmpty(asked);
        Assert.All(asked, c => Assert.Matches("^ip6?tables -w -[SC] ", c));
        _s.Invoke("Test-OllamaExposure -FirewallBackend Bogus");
        Assert.Contains(_s.Streams!.Error, e => e.FullyQualifiedErrorId.StartsWith("ParameterArgumentValidationError", StringComparison.Ordinal));
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
