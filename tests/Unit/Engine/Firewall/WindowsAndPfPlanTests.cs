using OllamaContinuity.Firewall;
using OllamaContinuity.Native;

namespace OllamaContinuity.Tests.Firewall;

/// <summary>Windows Defender Firewall and macOS pf cannot run here: their exact plans, through the same runner seam.</summary>
public sealed class WindowsAndPfPlanTests
{
    private const string Ours = "OllamaContinuity-Ollama-TCP-11434";

    private static ScriptedTools Windows(bool withOurs, string ourAddresses = "", string description = "", string ourEnabled = "True")
    {
        // Inbound Allow rules: one for the port (e.g. added by hand after the seed), one program rule for ollama.exe
        // (the "allow ollama.exe" prompt), one unrelated; already disabled rules are never touched.
        var rules = string.Join('\n',
            """{"Name":"OpenOllama","DisplayName":"Ollama 11434","Group":"","Enabled":"True","Action":"Allow","Direction":"Inbound"}""",
            """{"Name":"TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe","Group":"","Enabled":"True","Action":"Allow"}""",
            """{"Name":"RDP","Group":"Remote Desktop","Enabled":"True","Action":"Allow"}""",
            """{"Name":"OldOllama","Group":"","Enabled":"False","Action":"Allow"}""");
        if (withOurs)
        {
            rules += "\n" + $$"""{"Name":"{{Ours}}","Group":"OllamaContinuity","Enabled":"{{ourEnabled}}","Action":"Allow"}""";
        }

        var ports = string.Join('\n',
            """{"InstanceID":"OpenOllama","Protocol":"TCP","LocalPort":"11434"}""",
            """{"InstanceID":"TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe","Protocol":"TCP","LocalPort":"Any"}""",
            """{"InstanceID":"RDP","Protocol":"TCP","LocalPort":"3389"}""",
            """{"InstanceID":"OldOllama","Protocol":"TCP","LocalPort":["11000-12000"]}""");
        var apps = """{"InstanceID":"TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe","Program":"C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe"}""";
        var t = new ScriptedTools()
            .On("Get-NetFirewallRule -Group OllamaContinuity", withOurs ? 0 : 1,
                withOurs ? $$"""{"Name":"{{Ours}}","Enabled":"{{ourEnabled}}","Description":{{System.Text.Json.JsonSerializer.Serialize(description)}}}""" : "", withOurs ? "" : "No MSFT_NetFirewallRule objects found")
            .On("Get-NetFirewallRule -Direction Inbound -Action Allow", 0, rules)
            .On("Get-NetFirewallPortFilter -All", 0, ports)
            .On("Get-NetFirewallApplicationFilter -All", 0, apps)
            .On("Get-NetFirewallAddressFilter -All", 0, $$"""{"InstanceID":"{{Ours}}","RemoteAddress":{{ourAddresses}}}""" + "\n" + """{"InstanceID":"RDP","RemoteAddress":"Any"}""")
            .On("Get-NetFirewallProfile", 0, """{"Name":"Domain","Enabled":"True","DefaultInboundAction":"NotConfigured"}""" + "\n" + """{"Name":"Private","Enabled":"True","DefaultInboundAction":"Block"}""" + "\n" + """{"Name":"Public","Enabled":"True","DefaultInboundAction":"Block"}""");
        return t;
    }

    private static Task<FirewallPlan> Plan(ScriptedTools t, params string[] allow)
    {
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.Windows });
        return m.PlanSetAsync(m.Create(FirewallBackendKind.WindowsFirewall), new FirewallRequest(11434, AllowFrom.Parse(allow)));
    }

    private const string Remembered = "Managed by OllamaContinuity (Set-OllamaFirewallRule): TCP 11434 from the remote addresses of this rule only; the default inbound action blocks the rest. Disabled rules: OpenOllama | TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe";

    [Fact]
    public async Task Windows_plan_is_a_scoped_allow_and_the_other_openers_disabled_never_a_block_rule()
    {
        var plan = await Plan(Windows(withOurs: false), "192.168.1.0/24", "fd00::/64");
        Assert.Equal(
        [
            "Set-NetFirewallRule -Name OpenOllama -Enabled False",
            "Set-NetFirewallRule -Name TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe -Enabled False",
            $"New-NetFirewallRule -Name {Ours} -DisplayName Ollama (TCP 11434) from allowed sources only -Description {Remembered} -Group OllamaContinuity -Direction Inbound -Action Allow -Protocol TCP -LocalPort 11434 -RemoteAddress 192.168.1.0/24,fd00::/64 -Profile Any -Enabled True",
        ], ScriptedTools.Lines(plan));
        Assert.DoesNotContain(plan.Steps, s => s.Command.Arguments.Contains("Block"));
        Assert.Equal($"Remove-NetFirewallRule -Name {Ours}", ScriptedTools.Line(plan.Steps[2].Undo!));
        Assert.Equal("Set-NetFirewallRule -Name OpenOllama -Enabled True", ScriptedTools.Line(plan.Steps[0].Undo!));
    }

    [Fact]
    public async Task Windows_converged_plans_nothing_and_reads_dotted_masks()
    {
        var noOpeners = new ScriptedTools()
            .On("Get-NetFirewallRule -Group OllamaContinuity", 0, $$"""{"Name":"{{Ours}}","Enabled":"True","Description":{{System.Text.Json.JsonSerializer.Serialize(Remembered)}}}""")
            .On("Get-NetFirewallRule -Direction Inbound -Action Allow", 0, $$"""{"Name":"{{Ours}}","Group":"OllamaContinuity","Enabled":"True"}""" + "\n" + """{"Name":"OpenOllama","Group":"","Enabled":"False"}""")
            .On("Get-NetFirewallPortFilter -All", 0, $$"""{"InstanceID":"{{Ours}}","Protocol":"TCP","LocalPort":"11434"}""" + "\n" + """{"InstanceID":"OpenOllama","Protocol":"TCP","LocalPort":"11434"}""")
            .On("Get-NetFirewallApplicationFilter -All", 0, "")
            .On("Get-NetFirewallAddressFilter -All", 0, $$"""{"InstanceID":"{{Ours}}","RemoteAddress":["192.168.1.0/255.255.255.0","fd00::/64"]}""")
            .On("Get-NetFirewallProfile", 0, """{"Name":"Public","Enabled":"True","DefaultInboundAction":"Block"}""");
        var plan = await Plan(noOpeners, "fd00::/64", "192.168.1.0/24");
        Assert.Empty(plan.Steps);
        Assert.True(plan.Current.Active);
        Assert.Equal(["192.168.1.0/24", "fd00::/64"], plan.Current.AllowFrom.Select(n => n.ToShort()));
    }

    [Fact]
    public async Task Windows_changed_set_updates_the_remote_addresses_of_the_one_rule()
    {
        var t = new ScriptedTools()
            .On("Get-NetFirewallRule -Group OllamaContinuity", 0, $$"""{"Name":"{{Ours}}","Enabled":"True","Description":{{System.Text.Json.JsonSerializer.Serialize(Remembered)}}}""")
            .On("Get-NetFirewallRule -Direction Inbound -Action Allow", 0, $$"""{"Name":"{{Ours}}","Group":"OllamaContinuity","Enabled":"True"}""")
            .On("Get-NetFirewallAddressFilter -All", 0, $$"""{"InstanceID":"{{Ours}}","RemoteAddress":"10.0.0.0/255.0.0.0"}""")
            .On("Get-NetFirewall", 0, "");
        var plan = await Plan(t, "10.8.0.0/24");
        Assert.Equal([$"Set-NetFirewallRule -Name {Ours} -RemoteAddress 10.8.0.0/24"], ScriptedTools.Lines(plan));
        Assert.Equal($"Set-NetFirewallRule -Name {Ours} -RemoteAddress 10.0.0.0/255.0.0.0", ScriptedTools.Line(plan.Steps[0].Undo!));
    }

    [Fact]
    public async Task Windows_remove_deletes_the_rule_and_re_enables_exactly_the_rules_it_had_disabled()
    {
        var t = Windows(withOurs: true, ourAddresses: "\"10.8.0.0/255.255.255.0\"", description: Remembered);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.Windows });
        var plan = await m.PlanRemoveAsync(m.Create(FirewallBackendKind.WindowsFirewall), 11434);
        Assert.Equal(
        [
            $"Remove-NetFirewallRule -Name {Ours}",
            "Set-NetFirewallRule -Name OpenOllama -Enabled True",
            "Set-NetFirewallRule -Name TCP Query User{A1}C:\\users\\me\\appdata\\local\\programs\\ollama\\ollama.exe -Enabled True",
        ], ScriptedTools.Lines(plan));
    }

    [Fact]
    public async Task Windows_warns_when_a_profile_is_off()
    {
        var t = new ScriptedTools().On("Get-NetFirewallRule -Group", 1).On("Get-NetFirewallProfile", 0, """{"Name":"Public","Enabled":"False","DefaultInboundAction":"Block"}""").On("Get-", 0, "");
        var plan = await Plan(t, "10.0.0.0/8");
        Assert.Contains(plan.Current.Warnings, w => w.Contains("Public", StringComparison.Ordinal) && w.Contains("disabled", StringComparison.Ordinal));
    }

    // ---- pf ----
    private static ScriptedTools PfEmpty() => new ScriptedTools().On("cat", 1, "", "No such file or directory").On("pfctl -s info", 0, "Status: Disabled\n").On("pfctl -a", 0, "");

    [Fact]
    public async Task Pf_plan_writes_an_anchor_loads_it_enables_pf_with_a_token_and_persists_with_a_launch_daemon()
    {
        var t = PfEmpty();
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.MacOS });
        var plan = await m.PlanSetAsync(m.Create(FirewallBackendKind.Pf), new FirewallRequest(11434, AllowFrom.Parse(["192.168.1.0/24", "fd00::/64"])));
        Assert.Equal(
        [
            "tee /etc/pf.anchors/ollama-guard-11434",
            "pfctl -n -a com.apple/ollama-guard-11434 -f /etc/pf.anchors/ollama-guard-11434",
            "pfctl -a com.apple/ollama-guard-11434 -f /etc/pf.anchors/ollama-guard-11434",
            "pfctl -E",
            "tee /etc/pf.anchors/ollama-guard-11434.token",
            "tee /Library/LaunchDaemons/com.ollamacontinuity.pf-11434.plist",
        ], ScriptedTools.Lines(plan));
        Assert.Equal(
            "# Managed by OllamaContinuity (Set-OllamaFirewallRule). Do not edit: run the cmdlet again.\n" +
            "table <ollama_allow_11434> const { 192.168.1.0/24, fd00::/64 }\n" +
            "pass in quick on lo0 proto tcp from any to any port 11434\n" +
            "pass in quick proto tcp from <ollama_allow_11434> to any port 11434\n" +
            "block drop in quick proto tcp from any to any port 11434\n", plan.Steps[0].Command.StandardInput);
        Assert.Contains("<string>/sbin/pfctl</string>", plan.Steps[5].Command.StandardInput);
        Assert.Contains("<string>com.apple/ollama-guard-11434</string>", plan.Steps[5].Command.StandardInput);
        Assert.DoesNotContain(plan.Steps, s => ScriptedTools.Line(s.Command).Contains("/etc/pf.conf", StringComparison.Ordinal));

        // Applying records the token pfctl -E printed.
        t.On("pfctl -E", 0, "", "pf enabled\nToken : 1234567890\n");
        var info = await m.ApplyAsync(m.Create(FirewallBackendKind.Pf), plan);
        var tokenWrite = t.Runner.Commands.Single(c => c.FileName == "tee" && c.Arguments.Contains("/etc/pf.anchors/ollama-guard-11434.token"));
        Assert.Equal("1234567890\n", tokenWrite.StandardInput);
        Assert.True(info.Changed);
    }

    [Fact]
    public async Task Pf_converged_plans_nothing_and_remove_releases_the_token()
    {
        var allow = AllowFrom.Parse(["10.8.0.0/24"]);
        var t = new ScriptedTools()
            .On("cat /etc/pf.anchors/ollama-guard-11434.token", 0, "42\n")
            .On("cat /etc/pf.anchors/ollama-guard-11434", 0, PfBackend.Rules(11434, allow))
            .On("cat /Library/LaunchDaemons/", 0, PfBackend.Plist(11434, "/etc/pf.anchors/ollama-guard-11434"))
            .On("pfctl -s info", 0, "Status: Enabled for 0 days\n")
            .On("pfctl -a com.apple/ollama-guard-11434 -s rules", 0, "pass in quick on lo0 ...\nblock drop in quick proto tcp from any to any port = 11434\n");
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.MacOS });
        var backend = m.Create(FirewallBackendKind.Pf);
        var plan = await m.PlanSetAsync(backend, new FirewallRequest(11434, allow));
        Assert.Empty(plan.Steps);
        Assert.True(plan.Current.Active);

        var remove = await m.PlanRemoveAsync(backend, 11434);
        Assert.Equal(
        [
            "rm -f /Library/LaunchDaemons/com.ollamacontinuity.pf-11434.plist",
            "pfctl -a com.apple/ollama-guard-11434 -F all",
            "pfctl -X 42",
            "rm -f /etc/pf.anchors/ollama-guard-11434.token",
            "rm -f /etc/pf.anchors/ollama-guard-11434",
        ], ScriptedTools.Lines(remove));
    }
}
