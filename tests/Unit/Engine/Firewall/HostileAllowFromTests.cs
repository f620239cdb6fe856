using System.Globalization;
using OllamaContinuity.Firewall;
using OllamaContinuity.Native;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Firewall;

/// <summary>Issue 9, items 6-8: ambiguous addresses, sets that cover everything, and large sets.</summary>
public sealed class HostileAllowFromTests
{
    private static string[] Hosts(int count) =>
        Enumerable.Range(0, count).Select(i => string.Create(CultureInfo.InvariantCulture, $"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")).ToArray();

    [Theory]
    [InlineData("010.010.010.010")]
    [InlineData("192.168.010.0/24")]
    [InlineData("10.0.0.01")]
    [InlineData("00.0.0.0/8")]
    [InlineData("::ffff:010.0.0.1")]
    public void A_leading_zero_octet_is_refused_not_read_as_octal(string value)
    {
        var e = Assert.Throws<FirewallInputException>(() => AllowFrom.Parse([value]));
        Assert.Equal("InvalidAllowFrom", e.ErrorId);
        Assert.Contains("leading zero", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10.1")]
    [InlineData("167772161")]
    [InlineData("10.0.0.256")]
    public void Short_and_out_of_range_IPv4_forms_are_refused(string value) =>
        Assert.Equal("InvalidAllowFrom", Assert.Throws<FirewallInputException>(() => AllowFrom.Parse([value])).ErrorId);

    [Theory]
    [InlineData("0.0.0.0/1", "128.0.0.0/1")]
    [InlineData("::/1", "8000::/1")]
    [InlineData("0.0.0.0/2", "128.0.0.0/1", "64.0.0.0/2", "fd00::/64")]
    [InlineData("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2")]
    public void Networks_that_together_cover_a_family_need_force(params string[] values)
    {
        var e = Assert.Throws<FirewallInputException>(() => AllowFrom.Parse(values));
        Assert.Equal("AllowFromEverywhere", e.ErrorId);
        Assert.Contains("cover every", e.Message, StringComparison.Ordinal);
        Assert.NotEmpty(AllowFrom.Parse(values, force: true));
    }

    [Theory]
    [InlineData("0.0.0.0/1", "128.0.0.0/2")]
    [InlineData("0.0.0.0/1", "::/1", "8000::/2")]
    [InlineData("0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6", "252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9")]
    public void A_set_with_a_gap_is_accepted(params string[] values) =>
        Assert.Equal(values.Length, AllowFrom.Parse(values).Count);

    [Fact]
    public void More_entries_than_the_module_takes_are_refused_before_anything_runs()
    {
        var e = Assert.Throws<FirewallInputException>(() => AllowFrom.Parse(Hosts(AllowFrom.MaxEntries + 1)));
        Assert.Equal("AllowFromTooMany", e.ErrorId);
        Assert.Contains("10000", e.Message.Replace(",", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(AllowFrom.MaxEntries, AllowFrom.Parse(Hosts(AllowFrom.MaxEntries)).Count);
    }

    [Theory]
    [InlineData(FirewallBackendKind.Ufw, AllowFrom.MaxUfwEntries)]
    [InlineData(FirewallBackendKind.WindowsFirewall, AllowFrom.MaxWindowsEntries)]
    public async Task A_backend_without_batching_refuses_above_its_cap_before_any_tool_runs(FirewallBackendKind kind, int cap)
    {
        var runner = new RecordingCommandRunner();
        var m = new FirewallManager(new FirewallEnvironment { Runner = runner, Platform = kind == FirewallBackendKind.WindowsFirewall ? FirewallPlatform.Windows : FirewallPlatform.Linux });
        var e = await Assert.ThrowsAsync<FirewallInputException>(() => m.PlanSetAsync(m.Create(kind), new FirewallRequest(11434, AllowFrom.Parse(Hosts(cap + 1)))));
        Assert.Equal("AllowFromTooMany", e.ErrorId);
        Assert.Empty(runner.Commands);
    }

    [Fact]
    public async Task Ten_thousand_sources_are_one_iptables_restore_per_family_not_ten_thousand_calls()
    {
        var t = new ScriptedTools().On("iptables -w -S OLLAMA", 1).On("ip6tables -w -S OLLAMA", 1).On("iptables -w -C", 1).On("ip6tables -w -C", 1);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner });
        var plan = await m.PlanSetAsync(m.Create(FirewallBackendKind.Iptables), new FirewallRequest(11434, AllowFrom.Parse([.. Hosts(10_000)[..9_999], "fd00::/64"])));

        Assert.True(plan.Steps.Count <= 10, string.Join("\n", ScriptedTools.Lines(plan)));
        var restore = Assert.Single(plan.Steps, s => s.Command.FileName == "iptables-restore").Command;
        Assert.Equal(9_999, restore.StandardInput!.Split('\n').Count(l => l.StartsWith("-A OLLAMA-GUARD-11434 -s ", StringComparison.Ordinal)));
        Assert.StartsWith("*filter\n:OLLAMA-GUARD-11434 - [0:0]\n-A OLLAMA-GUARD-11434 -i lo -j RETURN\n", restore.StandardInput, StringComparison.Ordinal);
        Assert.EndsWith("-A OLLAMA-GUARD-11434 -j DROP\nCOMMIT\n", restore.StandardInput, StringComparison.Ordinal);
        Assert.True(t.Runner.Commands.Count < 10, "reading the state took " + t.Runner.Commands.Count + " calls");
    }

    [Fact]
    public async Task Ten_thousand_sources_are_batched_rich_rules_for_firewalld_and_read_back_in_a_few_calls()
    {
        var t = new ScriptedTools().On("firewall-cmd --state", 0, "running\n").On("firewall-cmd --permanent --get-policies", 0, "allow-host-ipv6\n");
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner });
        var plan = await m.PlanSetAsync(m.Create(FirewallBackendKind.Firewalld), new FirewallRequest(11434, AllowFrom.Parse(Hosts(10_000))));
        var adds = plan.Steps.Where(s => s.Command.Arguments.Any(a => a.StartsWith("--add-rich-rule=rule family", StringComparison.Ordinal))).ToArray();
        Assert.Equal(10_000 / FirewalldBackend.BatchSize, adds.Length);
        Assert.Equal(10_000, adds.Sum(s => s.Command.Arguments.Count(a => a.StartsWith("--add-rich-rule=", StringComparison.Ordinal))));
        Assert.All(adds, s => Assert.Equal(FirewalldBackend.BatchSize, s.Undo!.Arguments.Count(a => a.StartsWith("--remove-rich-rule=", StringComparison.Ordinal))));
        Assert.True(plan.Steps.Count < 40, plan.Steps.Count + " steps");

        // Reading 10,000 existing rules back is a fixed number of calls (no --query-rich-rule per source).
        var rules = string.Join("\n", AllowFrom.Parse(Hosts(10_000)).Select(n => FirewalldBackend.AcceptRule(n, 11434)).Append(FirewalldBackend.DropRule(11434)));
        var t2 = new ScriptedTools().On("firewall-cmd --state", 0, "running\n").On("firewall-cmd --permanent --get-policies", 0, "ollama-11434\n")
            .On("firewall-cmd --permanent --info-policy", 0, "ollama-11434\n  priority: -100\n  ingress-zones: ANY\n  egress-zones: HOST\n")
            .On("firewall-cmd --permanent --policy=ollama-11434 --list-rich-rules", 0, rules).On("firewall-cmd --policy=ollama-11434 --list-rich-rules", 0, rules);
        var m2 = new FirewallManager(new FirewallEnvironment { Runner = t2.Runner });
        var state = await m2.GetAsync(m2.Create(FirewallBackendKind.Firewalld), 11434);
        Assert.True(state.Active);
        Assert.Equal(10_000, state.AllowFrom.Count);
        Assert.True(t2.Runner.Commands.Count < 10, t2.Runner.Commands.Count + " calls");
    }

    [Fact]
    public async Task Ten_thousand_sources_are_one_nft_transaction()
    {
        var t = new ScriptedTools().On("nft -j list", 1).On("cat", 1);
        var m = new FirewallManager(new FirewallEnvironment { Runner = t.Runner, NftablesIncludeDirectory = null });
        var plan = await m.PlanSetAsync(m.Create(FirewallBackendKind.Nftables), new FirewallRequest(11434, AllowFrom.Parse(Hosts(10_000))));
        Assert.Equal(["nft -c -f -", "nft -f -"], ScriptedTools.Lines(plan));
    }
}

/// <summary>Large sets applied for real in a network namespace: few tool calls, the exact rules, and a re-run plans nothing.</summary>
[Collection("Real firewalls")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RealLargeSetTests
{
    [SkippableTheory]
    [InlineData(FirewallBackendKind.Iptables)]
    [InlineData(FirewallBackendKind.Nftables)]
    public async Task Ten_thousand_sources_are_applied_for_real_in_a_few_calls(FirewallBackendKind kind)
    {
        Require.Root();
        Require.Tool(kind == FirewallBackendKind.Iptables ? "iptables-restore" : "nft");
        var before = HostFirewallSnapshot.Take();
        using (var ns = NetNs.Create("big"))
        {
            var runner = new CountingRunner(new ProcessCommandRunner { Prefix = ["ip", "netns", "exec", ns.Name], Timeout = TimeSpan.FromSeconds(120) });
            var m = new FirewallManager(new FirewallEnvironment { Runner = runner, NftablesIncludeDirectory = null });
            var sources = Enumerable.Range(0, 10_000).Select(i => string.Create(CultureInfo.InvariantCulture, $"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")).Append("fd00::/64").ToArray();
            var request = new FirewallRequest(11434, AllowFrom.Parse(sources[1..])); // 10,000 entries in all

            var info = await m.SetAsync(m.Create(kind), request);

            Assert.True(info.Active);
            Assert.Equal(10_000, info.AllowFrom.Count);
            Assert.True(runner.Changing < 10, $"{runner.Changing} changing calls: " + string.Join("; ", info.Commands.Take(12)));
            if (kind == FirewallBackendKind.Iptables)
            {
                Assert.Equal(9_999 + 2, ns.Exec("iptables", "-S", "OLLAMA-GUARD-11434").Output.Split('\n').Count(l => l.StartsWith("-A ", StringComparison.Ordinal)));
            }

            // Converged: the same request plans nothing; a smaller one is again one batch.
            Assert.Empty((await m.PlanSetAsync(m.Create(kind), request)).Steps);
            var smaller = new FirewallRequest(11434, AllowFrom.Parse(sources[5_000..]));
            await m.SetAsync(m.Create(kind), smaller);
            Assert.Equal(5_001, (await m.GetAsync(m.Create(kind), 11434)).AllowFrom.Count);
            await m.RemoveAsync(m.Create(kind), 11434);
            Assert.False((await m.GetAsync(m.Create(kind), 11434)).Present);
        }

        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    private sealed class CountingRunner(ICommandRunner inner) : ICommandRunner
    {
        private int _changing;

        public int Changing => _changing;

        public Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default)
        {
            var line = string.Join(' ', command.Arguments);
            var readOnly = line.StartsWith("-w -S", StringComparison.Ordinal) || line.StartsWith("-w -C", StringComparison.Ordinal) || line.Contains("list", StringComparison.Ordinal)
                || command.FileName == "cat" || line.StartsWith("-c ", StringComparison.Ordinal);
            if (!readOnly)
            {
                Interlocked.Increment(ref _changing);
            }

            return inner.RunAsync(command, cancellationToken);
        }
    }
}
