using OllamaContinuity.Firewall;
using OllamaContinuity.Native;

namespace OllamaContinuity.Tests.Firewall;

/// <summary>A recording runner that answers read commands from a table (first matching prefix wins).</summary>
internal sealed class ScriptedTools
{
    private readonly List<(string Prefix, CommandResult Result)> _answers = [];

    public ScriptedTools() => Runner.Respond = c =>
    {
        var line = Line(c);
        foreach (var (prefix, result) in _answers)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return result;
            }
        }

        return new CommandResult(0, "", "");
    };

    public RecordingCommandRunner Runner { get; } = new();

    public ScriptedTools On(string prefix, int exitCode, string stdout = "", string stderr = "")
    {
        _answers.Add((prefix, new CommandResult(exitCode, stdout, stderr)));
        return this;
    }

    public static string Line(CommandInvocation c) => string.Join(' ', new[] { c.FileName }.Concat(c.Arguments));

    /// <summary>The commands after the read phase, as plain lines.</summary>
    public static string[] Lines(FirewallPlan plan) => plan.Steps.Select(s => Line(s.Command)).ToArray();
}

public sealed class PlanTests
{
    private static FirewallRequest Req(params string[] allow) => new(11434, AllowFrom.Parse(allow));

    private static async Task<FirewallPlan> PlanSet(ScriptedTools t, FirewallBackendKind kind, FirewallRequest request, FirewallEnvironment? env = null)
    {
        var m = new FirewallManager(env ?? new FirewallEnvironment { Runner = t.Runner });
        return await m.PlanSetAsync(m.Create(kind), request);
    }

    private static async Task<FirewallPlan> PlanRemove(ScriptedTools t, FirewallBackendKind kind, FirewallEnvironment? env = null)
    {
        var m = new FirewallManager(env ?? new FirewallEnvironment { Runner = t.Runner });
        return await m.PlanRemoveAsync(m.Create(kind), 11434);
    }

    // ---- ufw ----
    private const string UfwNone = "Added user rules (see 'ufw status' for running firewall):\n(None)\n";

    [Fact]
    public async Task Ufw_prepends_each_source_then_denies_the_port_and_enables_only_when_asked()
    {
        var t = new ScriptedTools().On("ufw status", 0, "Status: inactive\n").On("ufw show added", 0, UfwNone);
        var plan = await PlanSet(t, FirewallBackendKind.Ufw, Req("fd00::/64", "192.168.1.0/24") with { EnableFirewall = true });
        Assert.Equal(
        [
            "ufw prepend allow proto tcp from fd00::/64 to any port 11434 comment OllamaContinuity",
            "ufw prepend allow proto tcp from 192.168.1.0/24 to any port 11434 comment OllamaContinuity",
            "ufw deny proto tcp to any port 11434 comment OllamaContinuity",
            "ufw --force enable",
        ], ScriptedTools.Lines(plan));
        Assert.Contains(plan.Current.Warnings, w => w.Contains("-EnableFirewall", StringComparison.Ordinal));

        var without = await PlanSet(t, FirewallBackendKind.Ufw, Req("192.168.1.0/24"));
        Assert.DoesNotContain(ScriptedTools.Lines(without), l => l.Contains("enable", StringComparison.Ordinal));
    }

    private static ScriptedTools UfwWith(params string[] sources) => UfwWithOptions("", sources);

    private static ScriptedTools UfwWithOptions(string options, params string[] sources) => new ScriptedTools().On($"ufw {options}status", 0, "Status: active\n").On($"ufw {options}show added", 0,
        "Added user rules (see 'ufw status' for running firewall):\n" +
        string.Concat(sources.Select(s => $"ufw allow from {s} to any port 11434 proto tcp comment 'OllamaContinuity'\n")) +
        "ufw allow 22/tcp\nufw deny 11434/tcp comment 'OllamaContinuity'\n");

    [Fact]
    public async Task Ufw_converged_plans_nothing()
    {
        var plan = await PlanSet(UfwWith("10.8.0.0/24", "192.168.1.0/24"), FirewallBackendKind.Ufw, Req("192.168.1.0/24", "10.8.0.0/24"));
        Assert.Empty(plan.Steps);
        Assert.True(plan.Current.Active);
    }

    [Fact]
    public async Task Ufw_converges_to_exactly_the_new_set_and_passes_rootdir_options()
    {
        var t = UfwWithOptions("--rootdir=/x --datadir=/x ", "10.8.0.0/24", "192.168.1.0/24");
        var env = new FirewallEnvironment { Runner = t.Runner, UfwOptions = ["--rootdir=/x", "--datadir=/x"] };
        var plan = await PlanSet(t, FirewallBackendKind.Ufw, Req("192.168.1.0/24", "10.9.0.0/24"), env);
        Assert.Equal(
        [
            "ufw --rootdir=/x --datadir=/x prepend allow proto tcp from 10.9.0.0/24 to any port 11434 comment OllamaContinuity",
            "ufw --rootdir=/x --datadir=/x delete allow proto tcp from 10.8.0.0/24 to any port 11434",
        ], ScriptedTools.Lines(plan));
        Assert.All(t.Runner.Commands, c => Assert.Equal("--rootdir=/x", c.Arguments[0]));
    }

    [Fact]
    public async Task Ufw_remove_deletes_only_the_commented_rules()
    {
        var plan = await PlanRemove(UfwWith("10.8.0.0/24"), FirewallBackendKind.Ufw);
        Assert.Equal(
        [
            "ufw delete deny proto tcp to any port 11434",
            "ufw delete allow proto tcp from 10.8.0.0/24 to any port 11434",
        ], ScriptedTools.Lines(plan));
    }

    // ---- firewalld ----
    [Fact]
    public async Task Firewalld_uses_a_policy_before_all_zones_with_ordered_accepts_and_a_last_drop()
    {
        var t = new ScriptedTools().On("firewall-cmd --state", 0, "running\n").On("firewall-cmd --permanent --get-policies", 0, "allow-host-ipv6\n");
        var plan = await PlanSet(t, FirewallBackendKind.Firewalld, Req("192.168.1.0/24", "fd00::/64"));
        Assert.Equal(
        [
            "firewall-cmd --permanent --new-policy=ollama-11434",
            "firewall-cmd --permanent --policy=ollama-11434 --set-description=Managed by OllamaContinuity (Set-OllamaFirewallRule): TCP to the port from the accepted sources only; loopback is always accepted.",
            "firewall-cmd --permanent --policy=ollama-11434 --set-priority=-100",
            "firewall-cmd --permanent --policy=ollama-11434 --add-ingress-zone=ANY",
            "firewall-cmd --permanent --policy=ollama-11434 --add-egress-zone=HOST",
            "firewall-cmd --permanent --policy=ollama-11434 --add-rich-rule=rule family=\"ipv4\" source address=\"192.168.1.0/24\" port port=\"11434\" protocol=\"tcp\" accept",
            "firewall-cmd --permanent --policy=ollama-11434 --add-rich-rule=rule family=\"ipv6\" source address=\"fd00::/64\" port port=\"11434\" protocol=\"tcp\" accept",
            "firewall-cmd --permanent --policy=ollama-11434 --add-rich-rule=rule priority=\"32767\" port port=\"11434\" protocol=\"tcp\" drop",
            "firewall-cmd --reload",
        ], ScriptedTools.Lines(plan));
        Assert.DoesNotContain(plan.Steps, s => ScriptedTools.Line(s.Command).Contains("--zone", StringComparison.Ordinal));
    }

    private const string PolicyInfo = "ollama-11434\n  priority: -100\n  target: CONTINUE\n  ingress-zones: ANY\n  egress-zones: HOST\n";

    [Fact]
    public async Task Firewalld_converges_in_place_and_a_converged_policy_plans_nothing()
    {
        var rules = "rule family=\"ipv4\" source address=\"10.8.0.0/24\" port port=\"11434\" protocol=\"tcp\" accept\nrule priority=\"32767\" port port=\"11434\" protocol=\"tcp\" drop\n";
        var t = new ScriptedTools().On("firewall-cmd --state", 0, "running\n").On("firewall-cmd --permanent --get-policies", 0, "allow-host-ipv6 ollama-11434\n")
            .On("firewall-cmd --permanent --info-policy", 0, PolicyInfo).On("firewall-cmd --permanent --policy=ollama-11434 --list-rich-rules", 0, rules)
            .On("firewall-cmd --policy=ollama-11434 --list-rich-rules", 0, rules);
        Assert.Empty((await PlanSet(t, FirewallBackendKind.Firewalld, Req("10.8.0.0/24"))).Steps);

        var plan = await PlanSet(t, FirewallBackendKind.Firewalld, Req("192.168.1.0/24"));
        Assert.Equal(
        [
            "firewall-cmd --permanent --policy=ollama-11434 --add-rich-rule=rule family=\"ipv4\" source address=\"192.168.1.0/24\" port port=\"11434\" protocol=\"tcp\" accept",
            "firewall-cmd --permanent --policy=ollama-11434 --remove-rich-rule=rule family=\"ipv4\" source address=\"10.8.0.0/24\" port port=\"11434\" protocol=\"tcp\" accept",
            "firewall-cmd --reload",
        ], ScriptedTools.Lines(plan));

        var remove = await PlanRemove(t, FirewallBackendKind.Firewalld);
        Assert.Equal(
        [
            "firewall-cmd --permanent --policy=ollama-11434 --remove-rich-rule=rule priority=\"32767\" port port=\"11434\" protocol=\"tcp\" drop",
            "firewall-cmd --permanent --policy=ollama-11434 --remove-rich-rule=rule family=\"ipv4\" source address=\"10.8.0.0/24\" port port=\"11434\" protocol=\"tcp\" accept",
            "firewall-cmd --permanent --delete-policy=ollama-11434",
            "firewall-cmd --reload",
        ], ScriptedTools.Lines(remove));
        Assert.Equal(4, remove.Steps[2].MoreUndo.Count); // a failed removal rebuilds the policy before its rules
    }

    [Fact]
    public async Task Firewalld_without_policies_names_the_version_needed()
    {
        var t = new ScriptedTools().On("firewall-cmd --state", 0, "running\n").On("firewall-cmd --permanent --get-policies", 2, "", "firewall-cmd: error: unrecognized arguments: --get-policies");
        var e = await Assert.ThrowsAsync<FirewallBackendNotFoundException>(() => PlanSet(t, FirewallBackendKind.Firewalld, Req("10.0.0.0/8")));
        Assert.Contains("0.9", e.Message);
    }

    [Fact]
    public async Task Firewalld_not_running_is_a_clear_error()
    {
        var t = new ScriptedTools().On("firewall-cmd --state", 252, "not running\n");
        var e = await Assert.ThrowsAsync<FirewallBackendNotFoundException>(() => PlanSet(t, FirewallBackendKind.Firewalld, Req("10.0.0.0/8")));
        Assert.Contains("not running", e.Message);
    }

    // ---- nftables ----
    [Fact]
    public async Task Nftables_checks_then_loads_one_atomic_ruleset_and_writes_the_include_file()
    {
        var t = new ScriptedTools().On("nft -j list", 1, "", "Error: No such file or directory").On("cat", 1);
        var plan = await PlanSet(t, FirewallBackendKind.Nftables, Req("192.168.1.0/24", "10.8.0.0/24", "fd00::/64"));
        Assert.Equal(["nft -c -f -", "nft -f -", "mkdir -p /etc/nftables.d", "tee /etc/nftables.d/ollama-guard-11434.nft"], ScriptedTools.Lines(plan));
        var ruleset = plan.Steps[1].Command.StandardInput!;
        Assert.Equal(plan.Steps[0].Command.StandardInput, ruleset);
        Assert.StartsWith("# Managed by OllamaContinuity", ruleset);
        Assert.Contains("table inet ollama_guard_11434\ndelete table inet ollama_guard_11434\ntable inet ollama_guard_11434 {", ruleset);
        Assert.Contains("elements = { 10.8.0.0/24, 192.168.1.0/24 }", ruleset);
        Assert.Contains("elements = { fd00::/64 }", ruleset);
        var lo = ruleset.IndexOf("iifname \"lo\" accept", StringComparison.Ordinal);
        Assert.True(lo > 0 && lo < ruleset.IndexOf("drop", StringComparison.Ordinal));
        Assert.Equal("nft delete table inet ollama_guard_11434", ScriptedTools.Line(plan.Steps[1].Undo!));
    }

    [Fact]
    public async Task Nftables_converged_plans_nothing()
    {
        const string json = """{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"ollama_guard_11434"}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}},"10.0.0.1"]}},{"set":{"name":"allow6","elem":[{"prefix":{"addr":"fd00::","len":64}}]}},{"chain":{}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}""";
        var request = Req("10.8.0.0/24", "10.0.0.1", "fd00::/64");
        var t = new ScriptedTools().On("nft -j list", 0, json).On("cat", 0, NftablesBackend.Ruleset(11434, request.AllowFrom));
        var plan = await PlanSet(t, FirewallBackendKind.Nftables, request);
        Assert.Empty(plan.Steps);
        Assert.Equal(["10.0.0.1", "10.8.0.0/24", "fd00::/64"], plan.Current.AllowFrom.Select(n => n.ToShort()));
    }

    // ---- iptables ----
    [Fact]
    public async Task Iptables_builds_an_own_chain_per_family_and_jumps_once()
    {
        var t = new ScriptedTools().On("iptables -w -S OLLAMA", 1).On("ip6tables -w -S OLLAMA", 1).On("iptables -w -C", 1).On("ip6tables -w -C", 1);
        var plan = await PlanSet(t, FirewallBackendKind.Iptables, Req("192.168.1.0/24", "fd00::/64"));
        Assert.Equal(
        [
            "iptables -w -N OLLAMA-GUARD-11434",
            "iptables -w -A OLLAMA-GUARD-11434 -i lo -j RETURN",
            "iptables -w -A OLLAMA-GUARD-11434 -s 192.168.1.0/24 -j RETURN",
            "iptables -w -A OLLAMA-GUARD-11434 -j DROP",
            "iptables -w -I INPUT 1 -p tcp --dport 11434 -j OLLAMA-GUARD-11434",
            "ip6tables -w -N OLLAMA-GUARD-11434",
            "ip6tables -w -A OLLAMA-GUARD-11434 -i lo -j RETURN",
            "ip6tables -w -A OLLAMA-GUARD-11434 -s fd00::/64 -j RETURN",
            "ip6tables -w -A OLLAMA-GUARD-11434 -j DROP",
            "ip6tables -w -I INPUT 1 -p tcp --dport 11434 -j OLLAMA-GUARD-11434",
        ], ScriptedTools.Lines(plan));
        // -C was asked before any -I.
        Assert.Contains(t.Runner.Commands, c => ScriptedTools.Line(c).StartsWith("iptables -w -C INPUT -p tcp --dport 11434 -j OLLAMA-GUARD-11434", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Iptables_converges_in_place_and_removes_duplicate_jumps()
    {
        var chain = "-N OLLAMA-GUARD-11434\n-A OLLAMA-GUARD-11434 -i lo -j RETURN\n-A OLLAMA-GUARD-11434 -s 10.8.0.0/24 -j RETURN\n-A OLLAMA-GUARD-11434 -j DROP\n";
        var input = "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 11434 -j OLLAMA-GUARD-11434\n-A INPUT -p tcp -m tcp --dport 11434 -j OLLAMA-GUARD-11434\n";
        var t = new ScriptedTools()
            .On("iptables -w -S OLLAMA", 0, chain).On("iptables -w -S INPUT", 0, input)
            .On("ip6tables -w -S OLLAMA", 0, "-N OLLAMA-GUARD-11434\n-A OLLAMA-GUARD-11434 -i lo -j RETURN\n-A OLLAMA-GUARD-11434 -j DROP\n").On("ip6tables -w -S INPUT", 0, "-A INPUT -p tcp -m tcp --dport 11434 -j OLLAMA-GUARD-11434\n");
        var plan = await PlanSet(t, FirewallBackendKind.Iptables, Req("192.168.1.0/24"));
        Assert.Equal(
        [
            "iptables -w -I OLLAMA-GUARD-11434 2 -s 192.168.1.0/24 -j RETURN",
            "iptables -w -D OLLAMA-GUARD-11434 -s 10.8.0.0/24 -j RETURN",
            "iptables -w -D INPUT -p tcp --dport 11434 -j OLLAMA-GUARD-11434",
        ], ScriptedTools.Lines(plan));
    }

    [Fact]
    public async Task A_failure_midway_rolls_back_what_this_run_changed_in_reverse_and_reports_stderr()
    {
        var t = new ScriptedTools().On("iptables -w -S OLLAMA", 1).On("ip6tables -w -S OLLAMA", 1).On("iptables -w -C", 1).On("ip6tables -w -C", 1)
            .On("iptables -w -A OLLAMA-GUARD-11434 -j DROP", 4, "", "iptables: Resource temporarily unavailable.");
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner });
        var backend = m.Create(FirewallBackendKind.Iptables);
        var plan = await m.PlanSetAsync(backend, Req("192.168.1.0/24"));
        var reads = t.Runner.Commands.Count;
        var e = await Assert.ThrowsAsync<FirewallCommandException>(() => m.ApplyAsync(backend, plan));
        Assert.Contains("Resource temporarily unavailable", e.Message);
        Assert.Equal(
        [
            "iptables -w -N OLLAMA-GUARD-11434",
            "iptables -w -A OLLAMA-GUARD-11434 -i lo -j RETURN",
            "iptables -w -A OLLAMA-GUARD-11434 -s 192.168.1.0/24 -j RETURN",
            "iptables -w -A OLLAMA-GUARD-11434 -j DROP",
            "iptables -w -D OLLAMA-GUARD-11434 -s 192.168.1.0/24 -j RETURN",
            "iptables -w -D OLLAMA-GUARD-11434 -i lo -j RETURN",
            "iptables -w -X OLLAMA-GUARD-11434",
        ], t.Runner.Commands.Skip(reads).Select(ScriptedTools.Line));
        Assert.Equal(3, e.RolledBack.Count);
        Assert.Empty(e.RollbackFailures);
    }

    [Theory]
    [InlineData(FirewallBackendKind.Ufw)]
    [InlineData(FirewallBackendKind.Nftables)]
    [InlineData(FirewallBackendKind.Iptables)]
    [InlineData(FirewallBackendKind.Firewalld)]
    [InlineData(FirewallBackendKind.Pf)]
    public async Task A_named_backend_whose_tool_is_missing_is_a_clear_error_before_any_change(FirewallBackendKind kind)
    {
        var t = new ScriptedTools().On("cat", 1).On("", 127, "", "No such file or directory");
        var e = await Assert.ThrowsAsync<FirewallBackendNotFoundException>(() => PlanSet(t, kind, Req("10.0.0.0/8")));
        Assert.Contains("-Backend", e.Message);
        Assert.Single(t.Runner.Commands, c => c.FileName != "cat");
    }

    // ---- detection ----
    [Theory]
    [InlineData(0, 0, 0, 0, FirewallBackendKind.Firewalld)]
    [InlineData(252, 0, 0, 0, FirewallBackendKind.Ufw)]
    [InlineData(127, 127, 0, 0, FirewallBackendKind.Nftables)]
    [InlineData(127, 127, 127, 0, FirewallBackendKind.Iptables)]
    public async Task Auto_detection_follows_firewalld_ufw_nftables_iptables(int firewalld, int ufw, int nft, int iptables, FirewallBackendKind expected)
    {
        var t = new ScriptedTools().On("firewall-cmd --state", firewalld).On("ufw version", ufw).On("nft --version", nft).On("iptables --version", iptables);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.Linux });
        Assert.Equal(expected, await m.DetectAsync());
    }

    [Theory]
    // An inactive ufw beside the module's own nftables table: nftables (issue 10).
    [InlineData("Status: inactive", "table inet ollama_guard_11434\ntable ip filter", "", FirewallBackendKind.Nftables, "this module's ruleset")]
    // An active ufw wins over everything but a running firewalld.
    [InlineData("Status: active", "table inet ollama_guard_11434", "-N OLLAMA-GUARD-11434", FirewallBackendKind.Ufw, "ufw is active")]
    // The module's own iptables chain beside an inactive ufw.
    [InlineData("Status: inactive", "table ip filter", "-P INPUT ACCEPT\n-N OLLAMA-GUARD-11434\n-A INPUT -p tcp --dport 11434 -j OLLAMA-GUARD-11434", FirewallBackendKind.Iptables, "this module's chain")]
    // The admin's own nftables ruleset (an inet table) beside an inactive ufw.
    [InlineData("Status: inactive", "table inet filter", "-P INPUT ACCEPT", FirewallBackendKind.Nftables, "table inet filter")]
    // The admin's own iptables rules beside an inactive ufw.
    [InlineData("Status: inactive", "table ip filter", "-P INPUT DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT", FirewallBackendKind.Iptables, "iptables rules are in force")]
    // Nothing in force: the installed ufw, as before.
    [InlineData("Status: inactive", "", "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT", FirewallBackendKind.Ufw, "installed (inactive)")]
    public async Task Auto_detection_picks_the_firewall_in_force_not_one_merely_installed(string ufwStatus, string nftTables, string iptablesRules, FirewallBackendKind expected, string reason)
    {
        var t = new ScriptedTools().On("firewall-cmd --state", 252).On("ufw version", 0).On("ufw status", 0, ufwStatus + "\n")
            .On("nft --version", 0).On("nft list tables", 0, nftTables).On("iptables --version", 0).On("iptables -w -S", 0, iptablesRules);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.Linux });
        var detected = await m.DetectWithReasonAsync();
        Assert.Equal(expected, detected.Kind);
        Assert.Contains(reason, detected.Reason);
        Assert.All(t.Runner.CommandLines, c => Assert.Matches(@"^(firewall-cmd --state|ufw (version|status)|nft (--version|list tables)|iptables (--version|-w -S))$", c));
    }

    [Fact]
    public async Task No_backend_names_everything_that_was_looked_for()
    {
        var t = new ScriptedTools().On("", 127);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = FirewallPlatform.Linux });
        var e = await Assert.ThrowsAsync<FirewallBackendNotFoundException>(() => m.DetectAsync());
        foreach (var name in new[] { "firewalld", "ufw", "nft", "iptables", "-Backend" })
        {
            Assert.Contains(name, e.Message);
        }
    }

    [Theory]
    [InlineData(FirewallPlatform.Windows, FirewallBackendKind.WindowsFirewall)]
    [InlineData(FirewallPlatform.MacOS, FirewallBackendKind.Pf)]
    public async Task Windows_and_macOS_pick_their_own_firewall_without_running_anything(FirewallPlatform platform, FirewallBackendKind expected)
    {
        var t = new ScriptedTools();
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, Platform = platform });
        Assert.Equal(expected, await m.DetectAsync());
        Assert.Empty(t.Runner.Commands);
    }
}

public sealed class FirewallStatusReaderTests
{
    [Fact]
    public async Task The_audit_sees_the_rule_in_force_through_the_same_engine()
    {
        const string json = """{"nftables":[{"table":{}},{"set":{"name":"allow4","elem":[{"prefix":{"addr":"10.8.0.0","len":24}}]}},{"rule":{}},{"rule":{}},{"rule":{}},{"rule":{}}]}""";
        var t = new ScriptedTools().On("nft -j list", 0, json).On("nft list", 0, "table inet ollama_guard_11434 {}").On("cat", 0, "x");
        var status = await new FirewallStatusReader(new FirewallEnvironment { Runner = t.Runner }, FirewallBackendKind.Nftables).GetStatusAsync(11434, default);
        Assert.True(status.Restricted);
        Assert.Equal("Nftables", status.Backend);
        Assert.Equal(["10.8.0.0/24"], status.AllowFrom);
    }

    [Fact]
    public async Task No_rule_is_not_restricted_and_no_firewall_is_undetermined()
    {
        var absent = new ScriptedTools().On("nft -j list", 1).On("cat", 1);
        Assert.False((await new FirewallStatusReader(new FirewallEnvironment { Runner = absent.Runner }, FirewallBackendKind.Nftables).GetStatusAsync(11434, default)).Restricted);

        var none = new ScriptedTools().On("", 127);
        var status = await new FirewallStatusReader(new FirewallEnvironment { Runner = none.Runner, Platform = FirewallPlatform.Linux }).GetStatusAsync(11434, default);
        Assert.Null(status.Restricted);
        Assert.Contains("firewalld", status.Detail);
    }
}
