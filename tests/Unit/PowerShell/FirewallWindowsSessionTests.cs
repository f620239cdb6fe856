namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// The Windows Defender Firewall backend end to end on any OS: the module runs NetSecurity cmdlet calls in the
/// current PowerShell session, and tests/Pester/FakeNetSecurity.ps1 answers them there as a stateful stand-in. The
/// environment's process runner is pointed at a program that does not exist, so even a bug could not start a tool.
/// </summary>
[Collection(FirewallSeam.Collection)]
public sealed class FirewallWindowsSessionTests : IDisposable
{
    private const string Setup = FirewallSeam.Engine + """
        $noProcess = $engine.GetType('OllamaContinuity.Native.ProcessCommandRunner', $true)::new()
        $noProcess.Prefix = [string[]]@('/nonexistent/oc-no-process-may-start')
        $fe = $envType::new()
        $fe.Runner = $noProcess
        $fe.Platform = 'Windows'
        $envType::Default = $fe
        . $fake
        Add-FakeFirewallRule -Name 'OpenOllama' -LocalPort 11434
        Add-FakeFirewallRule -Name 'TCP Query User{A1}C:\ollama\ollama.exe' -Program 'C:\ollama\ollama.exe'
        Add-FakeFirewallRule -Name 'RDP' -Group 'Remote Desktop' -LocalPort 3389
        $envType::Default.Runner.Prefix[0]
        """;

    private const string Ours = "OllamaContinuity-Ollama-TCP-11434";
    private readonly ModuleSession _s = new();

    public FirewallWindowsSessionTests()
    {
        var r = _s.Invoke(Setup, new Dictionary<string, object?> { ["fake"] = Path.Combine(ModuleSession.RepoRoot, "tests", "Pester", "FakeNetSecurity.ps1") });
        Assert.True(r.Count == 1 && r[0].ToString() == "/nonexistent/oc-no-process-may-start", "setup failed: " + string.Join("; ", _s.Streams!.Error));
    }

    public void Dispose()
    {
        _s.Invoke(FirewallSeam.Reset);
        _s.Dispose();
    }

    private string Enabled(string name) => _s.Invoke("($global:FakeNetSecurity.Rules | Where-Object Name -eq $n).Enabled", new Dictionary<string, object?> { ["n"] = name }).Single().ToString();

    [Fact]
    public void Auto_on_Windows_adds_one_scoped_allow_rule_disables_the_other_openers_and_converges()
    {
        var set = Assert.Single(_s.Invoke("Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24, fd00::/64 -Confirm:$false"));
        Assert.Equal("WindowsFirewall", set.Properties["Backend"].Value.ToString());
        Assert.True((bool)set.Properties["Changed"].Value, string.Join("; ", _s.Streams!.Error));
        Assert.True((bool)set.Properties["Active"].Value, string.Join("; ", ((IEnumerable<string>)set.Properties["Warnings"].Value).ToArray()));
        Assert.Equal(["192.168.1.0/24", "fd00::/64"], ((IEnumerable<string>)set.Properties["AllowFrom"].Value).ToArray());
        Assert.Equal("False", Enabled("OpenOllama"));
        Assert.Equal("False", Enabled("TCP Query User{A1}C:\\ollama\\ollama.exe"));
        Assert.Equal("True", Enabled("RDP"));
        var rule = _s.Invoke("$global:FakeNetSecurity.Rules | Where-Object Name -eq $n | ForEach-Object { $_.Action; $_.Protocol; $_.LocalPort; $_.RemoteAddress -join ',' }", new Dictionary<string, object?> { ["n"] = Ours });
        Assert.Equal(["Allow", "TCP", "11434", "192.168.1.0/24,fd00::/64"], rule.Select(o => o.ToString()));
        Assert.Empty(_s.Invoke("$global:FakeNetSecurity.Rules | Where-Object Action -eq 'Block'"));

        // Again: nothing to do (the address filter reads back as 192.168.1.0/255.255.255.0).
        var again = Assert.Single(_s.Invoke("Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24, fd00::/64 -Confirm:$false"));
        Assert.False((bool)again.Properties["Changed"].Value);
        Assert.Empty(((IEnumerable<string>)again.Properties["Commands"].Value).ToArray());

        // A new set changes the one rule's remote addresses.
        var changed = Assert.Single(_s.Invoke("Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Confirm:$false"));
        Assert.Equal(["10.8.0.0/24"], ((IEnumerable<string>)changed.Properties["AllowFrom"].Value).ToArray());
        Assert.Equal([$"Set-NetFirewallRule -Name {Ours} -RemoteAddress 10.8.0.0/24"], ((IEnumerable<string>)changed.Properties["Commands"].Value).ToArray());

        var got = Assert.Single(_s.Invoke("Get-OllamaFirewallRule"));
        Assert.Equal(["10.8.0.0/24"], ((IEnumerable<string>)got.Properties["AllowFrom"].Value).ToArray());

        // Remove deletes the module's rule and re-enables exactly the rules it had disabled.
        var removed = Assert.Single(_s.Invoke("Remove-OllamaFirewallRule -Confirm:$false"));
        Assert.True((bool)removed.Properties["Changed"].Value);
        Assert.Empty(_s.Invoke("$global:FakeNetSecurity.Rules | Where-Object Name -eq $n", new Dictionary<string, object?> { ["n"] = Ours }));
        Assert.Equal("True", Enabled("OpenOllama"));
        Assert.Equal("True", Enabled("TCP Query User{A1}C:\\ollama\\ollama.exe"));
        Assert.False((bool)Assert.Single(_s.Invoke("Remove-OllamaFirewallRule -Confirm:$false")).Properties["Changed"].Value);
    }

    [Fact]
    public void WhatIf_on_Windows_lists_the_cmdlet_calls_and_changes_nothing()
    {
        Assert.Empty(_s.Invoke("Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24 -Backend WindowsFirewall -WhatIf"));
        var text = _s.Host.TestUI.Text;
        var disable = text.IndexOf("1. Set-NetFirewallRule -Name OpenOllama -Enabled False", StringComparison.Ordinal);
        var create = text.IndexOf("3. New-NetFirewallRule -Name " + Ours, StringComparison.Ordinal);
        Assert.True(disable >= 0 && create > disable, text);
        Assert.Equal("True", Enabled("OpenOllama"));
        Assert.DoesNotContain(_s.Invoke("$global:FakeNetSecurity.Calls").Select(o => o.ToString()), c => !c.StartsWith("Get-", StringComparison.Ordinal));
    }
}

/// <summary>The firewall PowerShell tests share the engine's process-wide FirewallEnvironment.Default: never in parallel.</summary>
[CollectionDefinition(Collection)]
public sealed class FirewallSeam
{
    public const string Collection = "Firewall environment (process-wide)";

    /// <summary>
    /// Loads the engine with a call that fails validation before anything runs, and gives $engine, $envType and
    /// $runnerType. Engine types live in the module's own load context, which PowerShell type literals do not
    /// search: the assembly is reached through the AppDomain and its types are used as $type::Member.
    /// </summary>
    public const string Engine = """
        try { Set-OllamaFirewallRule -AllowFrom 'load;engine' -ErrorAction Stop } catch { }
        $engine = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'OllamaContinuity.Engine' }
        $envType = $engine.GetType('OllamaContinuity.Firewall.FirewallEnvironment', $true)
        $runnerType = $engine.GetType('OllamaContinuity.Native.RecordingCommandRunner', $true)

        """;

    /// <summary>Leaves a recording runner installed, so nothing that runs later in this process reaches a real firewall.</summary>
    public const string Reset = """
        $fe = $envType::new()
        $fe.Runner = $runnerType::new()
        $envType::Default = $fe
        """;
}
