using System.Management.Automation;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// The firewall cmdlets through PowerShell, with the engine's runner replaced by a scripted recording runner
/// (reached through PowerShell), so that no firewall tool ever runs on the test host.
/// </summary>
[Collection(FirewallSeam.Collection)]
public sealed class FirewallCmdletTests : IDisposable
{
    // Installs a scripted runner in place of the real one (see FirewallSeam.Engine for how the types are reached).
    private const string Seam = FirewallSeam.Engine + """
        $runner = $runnerType::new()
        $fe = $envType::new()
        $fe.Runner = $runner
        $fe.Platform = 'Linux'
        $fe.NftablesIncludeDirectory = '/etc/nftables.d'
        $envType::Default = $fe
        $envType::Default.Runner.GetType().Name
        """;

    private readonly ModuleSession _s = new();

    public FirewallCmdletTests()
    {
        var installed = _s.Invoke(Seam);
        Assert.True(installed.Count == 1 && installed[0].ToString() == "RecordingCommandRunner", "seam not installed: " + string.Join("; ", _s.Streams!.Error));
    }

    public void Dispose()
    {
        _s.Invoke(FirewallSeam.Reset);
        _s.Dispose();
    }

    private string[] Recorded() => _s.Invoke("$runner.CommandLines").Select(o => o.ToString()).ToArray();

    private const string NftAbsent = "$null = $runner.Answer('nft -j list', 1, '', 'Error: No such file or directory').Answer('cat', 1)";

    [Fact]
    public void WhatIf_prints_every_command_in_order_and_runs_none_of_them()
    {
        var result = _s.Invoke(NftAbsent + "; Set-OllamaFirewallRule -AllowFrom 192.168.1.0/24, fd00::/64 -Backend Nftables -WhatIf");
        Assert.Empty(result);
        var text = _s.Host.TestUI.Text;
        Assert.Contains("What if:", text);
        var order = new[] { "1. nft -c -f -", "2. nft -f -", "3. mkdir -p /etc/nftables.d", "4. tee /etc/nftables.d/ollama-guard-11434.nft" }.Select(c => text.IndexOf(c, StringComparison.Ordinal)).ToArray();
        Assert.All(order, i => Assert.True(i >= 0, text));
        Assert.Equal(order.Order(), order);
        Assert.Contains("elements = { 192.168.1.0/24 }", text);
        // Only read-only queries ran.
        Assert.All(Recorded(), c => Assert.True(c.StartsWith("nft -j list", StringComparison.Ordinal) || c.StartsWith("cat ", StringComparison.Ordinal), c));
    }

    [Theory]
    [InlineData("10.0.0.0/8; rm -rf /", "InvalidAllowFrom")]
    [InlineData("$(id)", "InvalidAllowFrom")]
    [InlineData("10.0.0.0/33", "InvalidAllowFrom")]
    [InlineData("::/0", "AllowFromEverywhere")]
    [InlineData("0.0.0.0/0", "AllowFromEverywhere")]
    [InlineData("ollama.example.com", "InvalidAllowFrom")]
    [InlineData("", "EmptyAllowFrom")]
    [InlineData("192.168.1.10/24", "AllowFromHostBits")]
    public void Invalid_AllowFrom_is_a_terminating_parameter_error_before_any_process_starts(string value, string errorId)
    {
        _s.Invoke("$runner.Clear()");
        var result = _s.Invoke("try { '192.168.1.0/24', $bad | Set-OllamaFirewallRule -Backend Auto -Confirm:$false; 'after' } catch { $_ }", new Dictionary<string, object?> { ["bad"] = value });
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal(errorId + ",OllamaContinuity.Commands.SetOllamaFirewallRuleCommand", e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, e.CategoryInfo.Category);
        Assert.NotNull(e.ErrorDetails?.RecommendedAction);
        Assert.Empty(Recorded());
    }

    [Fact]
    public void Everywhere_is_accepted_with_Force()
    {
        _s.Invoke(NftAbsent + "; Set-OllamaFirewallRule -AllowFrom ::/0 -Backend Nftables -Force -WhatIf");
        Assert.False(_s.HadErrors, string.Join("; ", _s.Streams!.Error));
        Assert.Contains("elements = { ::/0 }", _s.Host.TestUI.Text);
    }

    [Theory]
    [InlineData("Set-OllamaFirewallRule -AllowFrom 10.0.0.0/8 -Port 0")]
    [InlineData("Set-OllamaFirewallRule -AllowFrom 10.0.0.0/8 -Backend Shorewall")]
    [InlineData("Get-OllamaFirewallRule -Port 70000")]
    [InlineData("Remove-OllamaFirewallRule -Backend Shorewall")]
    public void Out_of_range_port_and_unknown_backend_are_parameter_errors(string script)
    {
        _s.Invoke("$runner.Clear()");
        _s.Invoke(script);
        var e = Assert.Single(_s.Streams!.Error);
        Assert.StartsWith("ParameterArgumentValidationError,OllamaContinuity.Commands.", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Empty(Recorded());
    }

    [Fact]
    public void Set_applies_then_Get_reads_it_back_and_a_second_Set_changes_nothing()
    {
        var set = _s.Invoke(NftAbsent + "; Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24, fd00::/64 -Backend Nftables -Confirm:$false");
        var info = Assert.Single(set);
        Assert.Equal("OllamaContinuity.Firewall.FirewallRuleInfo", info.BaseObject.GetType().FullName);
        Assert.True((bool)info.Properties["Changed"].Value);
        Assert.Equal(["nft -c -f -", "nft -f -", "mkdir -p /etc/nftables.d", "tee /etc/nftables.d/ollama-guard-11434.nft"],
            (((IEnumerable<string>)info.Properties["Commands"].Value).ToArray()).Select(c => c.Split('\n')[0].Replace(" <<'EOF'", "", StringComparison.Ordinal)));

        // The firewall now reports the table (as nft prints it) and the include file holds the same ruleset.
        var ruleset = Recorded().Length > 0 ? (string)_s.Invoke("$runner.Commands | Where-Object FileName -eq 'tee' | ForEach-Object StandardInput").Single().BaseObject : "";
        const string json = """{"nftables":[{"metainfo":{}},{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"set":{"name":"allow6","elem":[{"prefix":{"addr":"fd00::","len":64}}]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}""";
        _s.Invoke("$runner = $runnerType::new(); $null = $runner.Answer('nft -j list', 0, $json).Answer('cat', 0, $ruleset); $fe.Runner = $runner",
            new Dictionary<string, object?> { ["json"] = json, ["ruleset"] = ruleset });

        var got = Assert.Single(_s.Invoke("Get-OllamaFirewallRule -Backend Nftables"));
        Assert.Equal(["10.8.0.0/24", "fd00::/64"], ((IEnumerable<string>)got.Properties["AllowFrom"].Value).ToArray());
        Assert.True((bool)got.Properties["Active"].Value);
        Assert.Contains("nft list table inet ollama_guard_11434", (string)got.Properties["SourceOfTruth"].Value);

        var again = Assert.Single(_s.Invoke("Set-OllamaFirewallRule -AllowFrom fd00::/64, 10.8.0.0/24 -Backend Nftables -Confirm:$false -Verbose"));
        Assert.False((bool)again.Properties["Changed"].Value);
        Assert.Empty(((IEnumerable<string>)again.Properties["Commands"].Value).ToArray());
        Assert.Contains(_s.Streams!.Verbose, v => v.Message.Contains("nothing to change", StringComparison.Ordinal));
        Assert.DoesNotContain(Recorded(), c => c.StartsWith("nft -f", StringComparison.Ordinal) || c.StartsWith("tee", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(2, false)] // [N] No
    [InlineData(0, true)]  // [Y] Yes
    public void Set_asks_first_with_the_whole_plan_and_No_changes_nothing(int answer, bool applied)
    {
        _s.Host.ChoiceAnswers.Enqueue(answer);
        var result = _s.Invoke(NftAbsent + "; Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Verbose");
        var streams = _s.Streams!;
        var prompt = Assert.Single(_s.Host.Prompts);
        Assert.Contains("2. nft -f -", prompt);
        Assert.Equal(applied ? 1 : 0, result.Count);
        Assert.Equal(applied, Recorded().Any(c => c.StartsWith("nft -f", StringComparison.Ordinal)));
        if (applied)
        {
            Assert.Contains(streams.Progress, p => p.StatusDescription.StartsWith("nft -f -", StringComparison.Ordinal));
            Assert.Equal(ProgressRecordType.Completed, streams.Progress[^1].RecordType);
            Assert.Contains(streams.Verbose, v => v.Message.StartsWith("Running: nft -f -", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_failing_tool_rolls_back_and_is_a_terminating_error_with_its_stderr()
    {
        var result = _s.Invoke(NftAbsent + "; $null = $runner.Answer('tee', 1, '', 'tee: /etc/nftables.d/x: Read-only file system'); try { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Backend Nftables -Confirm:$false; 'after' } catch { $_ }");
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal("FirewallCommandFailed,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand", e.FullyQualifiedErrorId);
        Assert.Contains("Read-only file system", e.ToString());
        Assert.Contains("nft delete table inet ollama_guard_11434", Recorded());
    }

    [Fact]
    public void No_firewall_found_names_what_was_looked_for()
    {
        var result = _s.Invoke("$null = $runner.Answer('', 127); try { Set-OllamaFirewallRule -AllowFrom 10.8.0.0/24 -Confirm:$false } catch { $_ }");
        var e = (ErrorRecord)Assert.Single(result).BaseObject;
        Assert.Equal("FirewallBackendNotFound,OllamaContinuity.Commands.SetOllamaFirewallRuleCommand", e.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.NotInstalled, e.CategoryInfo.Category);
        Assert.Contains("firewalld", e.ToString());
        Assert.Contains("iptables", e.ToString());
    }

    [Fact]
    public void Remove_with_nothing_to_remove_says_so_and_runs_no_change()
    {
        var r = Assert.Single(_s.Invoke(NftAbsent + "; Remove-OllamaFirewallRule -Backend Nftables -Confirm:$false"));
        Assert.False((bool)r.Properties["Changed"].Value);
        Assert.False((bool)r.Properties["Present"].Value);
        Assert.All(Recorded(), c => Assert.True(c.StartsWith("nft -j list", StringComparison.Ordinal) || c.StartsWith("cat ", StringComparison.Ordinal), c));
    }

    [Fact]
    public void Remove_WhatIf_lists_the_commands_and_runs_none()
    {
        const string added = "Added user rules (see 'ufw status' for running firewall):\nufw allow 22/tcp\nufw allow from 10.8.0.0/24 to any port 11434 proto tcp comment 'OllamaContinuity'\nufw deny 11434/tcp comment 'OllamaContinuity'\n";
        var r = _s.Invoke("$null = $runner.Answer('ufw status', 0, \"Status: active`n\").Answer('ufw show added', 0, $added); Remove-OllamaFirewallRule -Backend Ufw -WhatIf",
            new Dictionary<string, object?> { ["added"] = added });
        Assert.Empty(r);
        var text = _s.Host.TestUI.Text;
        var deny = text.IndexOf("1. ufw delete deny proto tcp to any port 11434", StringComparison.Ordinal);
        var allow = text.IndexOf("2. ufw delete allow proto tcp from 10.8.0.0/24 to any port 11434", StringComparison.Ordinal);
        Assert.True(deny >= 0 && allow > deny, text);
        Assert.DoesNotContain("22/tcp", text); // the admin's own rule is not the module's to remove
        Assert.DoesNotContain(Recorded(), c => c.Contains("delete", StringComparison.Ordinal));
    }

    [Fact]
    public void The_cmdlets_are_exported_with_ShouldProcess_and_high_impact()
    {
        var r = _s.Invoke("Get-Command -Module OllamaContinuity -Noun OllamaFirewallRule | ForEach-Object Name");
        Assert.Equal(["Get-OllamaFirewallRule", "Remove-OllamaFirewallRule", "Set-OllamaFirewallRule"], r.Select(o => o.ToString()).Order());
        var whatIf = _s.Invoke("(Get-Command Set-OllamaFirewallRule).Parameters.ContainsKey('WhatIf'); (Get-Command Remove-OllamaFirewallRule).Parameters.ContainsKey('Confirm')");
        Assert.All(whatIf, o => Assert.True((bool)o.BaseObject));
    }
}
