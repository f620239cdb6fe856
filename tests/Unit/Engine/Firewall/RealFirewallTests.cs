using OllamaContinuity.Firewall;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Firewall;

/// <summary>
/// The four Linux backends proven with real connections, as root, inside network namespaces the tests create
/// (see <see cref="FirewallLab"/>). The host's own firewall is compared before and after each test.
/// </summary>
[Collection("Real firewalls")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RealFirewallTests
{
    [SkippableFact]
    public Task Ufw_allows_only_the_listed_sources_and_loopback_converges_and_removes() =>
        Prove("ufw", "ufw", async lab =>
        {
            var env = lab.Ufw();
            await lab.Must("ufw", [.. env.UfwOptions, "allow", FirewallLab.OtherPort + "/tcp"]); // the admin's own rule
            return env;
        }, FirewallBackendKind.Ufw, enableFirewall: true, dump: lab => lab.Dump(["ufw", .. lab.UfwOptions, "show", "added"]));

    [SkippableFact]
    public Task Firewalld_allows_only_the_listed_sources_and_loopback_converges_and_removes() =>
        Prove("firewalld", "firewall-cmd", async lab =>
        {
            Require.Tool("dbus-daemon");
            Require.Tool("nsenter");
            Require.Tool("unshare");
            var env = await lab.FirewalldAsync();
            // The admin had opened the port to everyone in the default zone, as the seed tells people to do, and
            // another service (an SSH-like port) that trusted clients must keep reaching.
            await lab.Must("firewall-cmd", "--permanent", "--zone=public", "--add-port=11434/tcp");
            await lab.Must("firewall-cmd", "--permanent", "--zone=public", "--add-port=" + FirewallLab.OtherPort + "/tcp");
            await lab.Must("firewall-cmd", "--reload");
            return env;
        }, FirewallBackendKind.Firewalld, enableFirewall: false, dump: lab => lab.Dump(["firewall-cmd", "--permanent", "--list-all-zones"], ["firewall-cmd", "--permanent", "--get-policies"]), afterRemove: async lab =>
        {
            // Nothing of the module is left, and the admin's own zone settings were never touched.
            var policies = await lab.Runner.RunAsync(Native.CommandInvocation.Of("firewall-cmd", "--permanent", "--get-policies"));
            Assert.DoesNotContain("ollama-11434", policies.StandardOutput);
            var r = await lab.Runner.RunAsync(Native.CommandInvocation.Of("firewall-cmd", "--permanent", "--zone=public", "--query-port=11434/tcp"));
            Assert.True(r.Succeeded, r.StandardOutput + r.StandardError);
        });

    [SkippableFact]
    public Task Nftables_allows_only_the_listed_sources_and_loopback_converges_and_removes() =>
        Prove("nftables", "nft", async lab =>
        {
            await lab.AdminNftTable();
            return lab.Nftables();
        }, FirewallBackendKind.Nftables, enableFirewall: false, dump: lab => lab.Dump(["nft", "list", "ruleset"]), afterSet: lab =>
        {
            var include = Path.Combine(lab.Scratch, "nftables.d", "ollama-guard-11434.nft");
            Assert.Contains("table inet ollama_guard_11434 {", File.ReadAllText(include));
            return Task.CompletedTask;
        });

    [SkippableFact]
    public Task Iptables_allows_only_the_listed_sources_and_loopback_converges_and_removes() =>
        Prove("iptables", "iptables", async lab =>
        {
            await lab.AdminIptablesRules();
            return lab.Iptables();
        }, FirewallBackendKind.Iptables, enableFirewall: false, dump: lab => lab.Dump(["iptables", "-S"], ["ip6tables", "-S"]), afterSet: async lab =>
        {
            // Jumped to from INPUT exactly once per family, even after several applies.
            foreach (var tool in new[] { "iptables", "ip6tables" })
            {
                var r = await lab.Runner.RunAsync(Native.CommandInvocation.Of(tool, "-S", "INPUT"));
                Assert.Single(r.StandardOutput.Split('\n'), l => l.EndsWith("-j OLLAMA-GUARD-11434", StringComparison.Ordinal));
            }
        });

    private static async Task Prove(string name, string tool, Func<FirewallLab, Task<FirewallEnvironment>> setUp, FirewallBackendKind kind, bool enableFirewall,
        Func<FirewallLab, Task<string>> dump, Func<FirewallLab, Task>? afterSet = null, Func<FirewallLab, Task>? afterRemove = null)
    {
        Require.Root();
        Require.Tool(tool);
        Require.Tool("ip");
        var before = HostFirewallSnapshot.Take();
        await using (var lab = FirewallLab.Create())
        {
            var env = await setUp(lab);
            var manager = new FirewallManager(env);
            var backend = manager.Create(kind);
            Assert.Equal((true, true, true, true, true, true), lab.Probe());
            var initial = await dump(lab);

            // Apply: trusted range and loopback connect, the untrusted client is dropped, IPv4 and IPv6.
            var set = await manager.SetAsync(backend, Request(FirewallLab.TrustedRanges, enableFirewall));
            Assert.True(set.Changed, name);
            Assert.NotEmpty(set.Commands);
            Assert.Equal(FirewallLab.TrustedRanges, set.AllowFrom);
            Assert.True(set.Active, string.Join("; ", set.Warnings));
            Assert.Equal((true, true, false, false, true, true), lab.Probe());
            // Only the Ollama port is restricted: another service stays reachable for both clients (no lockout).
            Assert.True(lab.Trusted.CanConnect(FirewallLab.TrustedServer4, FirewallLab.OtherPort) && lab.Trusted.CanConnect(FirewallLab.TrustedServer6, FirewallLab.OtherPort), "trusted client lost another service");
            Assert.True(lab.Untrusted.CanConnect(FirewallLab.UntrustedServer4, FirewallLab.OtherPort) && lab.Untrusted.CanConnect(FirewallLab.UntrustedServer6, FirewallLab.OtherPort), "untrusted client lost another service");
            if (afterSet is not null)
            {
                await afterSet(lab);
            }

            // Re-apply: nothing to do, nothing run.
            var again = await manager.SetAsync(backend, Request(FirewallLab.TrustedRanges, enableFirewall));
            Assert.False(again.Changed, string.Join("\n", again.Commands));
            Assert.Empty(again.Commands);

            // Get reads the backend's own state.
            var got = await manager.GetAsync(backend, FirewallLab.Port);
            Assert.Equal(FirewallLab.TrustedRanges, got.AllowFrom);
            Assert.True(got.Active);

            // A different set converges to exactly the new set: the old sources are gone.
            var changed = await manager.SetAsync(backend, Request(FirewallLab.UntrustedHosts, enableFirewall));
            Assert.True(changed.Changed);
            Assert.Equal(FirewallLab.UntrustedHosts, changed.AllowFrom);
            Assert.Equal((false, false, true, true, true, true), lab.Probe());
            Assert.False((await manager.SetAsync(backend, Request(FirewallLab.UntrustedHosts, enableFirewall))).Changed);
            if (afterSet is not null)
            {
                await afterSet(lab);
            }

            // Remove: only what the module added goes, and everyone connects again.
            var removed = await manager.RemoveAsync(backend, FirewallLab.Port);
            Assert.True(removed.Changed);
            Assert.False(removed.Present);
            Assert.Empty(removed.AllowFrom);
            Assert.Equal((true, true, true, true, true, true), lab.Probe());
            Assert.False((await manager.RemoveAsync(backend, FirewallLab.Port)).Changed);

            // Only what the module added is gone: the firewall is exactly as the admin had it (their own rules too).
            Assert.Equal(initial, await dump(lab));
            if (afterRemove is not null)
            {
                await afterRemove(lab);
            }
        }

        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    [SkippableTheory]
    [InlineData(FirewallBackendKind.Iptables, "ip6tables -w -A OLLAMA-GUARD-11434 -j DROP")]
    [InlineData(FirewallBackendKind.Nftables, "tee ")]
    [InlineData(FirewallBackendKind.Ufw, "ufw --rootdir")]
    public async Task A_tool_failing_half_way_is_rolled_back_for_real(FirewallBackendKind kind, string failOn)
    {
        Require.Root();
        Require.Tool(kind switch { FirewallBackendKind.Ufw => "ufw", FirewallBackendKind.Nftables => "nft", _ => "iptables" });
        var before = HostFirewallSnapshot.Take();
        await using (var lab = FirewallLab.Create())
        {
            var env = kind switch { FirewallBackendKind.Ufw => lab.Ufw(), FirewallBackendKind.Nftables => lab.Nftables(), _ => lab.Iptables() };
            if (kind == FirewallBackendKind.Ufw)
            {
                await lab.Must("ufw", [.. env.UfwOptions, "--force", "enable"]);
                failOn = "ufw " + string.Join(' ', env.UfwOptions) + " deny"; // the last change, after both prepends
            }

            var dump = kind switch
            {
                FirewallBackendKind.Ufw => lab.Dump(["ufw", .. env.UfwOptions, "show", "added"], ["iptables", "-S", "ufw-user-input"], ["ip6tables", "-S", "ufw6-user-input"]),
                FirewallBackendKind.Nftables => lab.Dump(["nft", "list", "ruleset"]),
                _ => lab.Dump(["iptables", "-S"], ["ip6tables", "-S"]),
            };
            var initial = await dump;
            var failing = new FailingRunner(env.Runner, failOn);
            env.Runner = failing;
            var manager = new FirewallManager(env);
            var e = await Assert.ThrowsAsync<FirewallCommandException>(() => manager.SetAsync(manager.Create(kind), Request(FirewallLab.TrustedRanges, false)));
            Assert.Contains("injected failure", e.Message);
            Assert.NotEmpty(e.RolledBack);
            Assert.Empty(e.RollbackFailures);
            var afterRollback = await (kind switch
            {
                FirewallBackendKind.Ufw => lab.Dump(["ufw", .. env.UfwOptions, "show", "added"], ["iptables", "-S", "ufw-user-input"], ["ip6tables", "-S", "ufw6-user-input"]),
                FirewallBackendKind.Nftables => lab.Dump(["nft", "list", "ruleset"]),
                _ => lab.Dump(["iptables", "-S"], ["ip6tables", "-S"]),
            });
            Assert.Equal(initial, afterRollback);
            Assert.Equal((true, true, true, true, true, true), lab.Probe());
        }

        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    /// <summary>Runs commands for real, but fails the first one whose line starts with a prefix (after running nothing).</summary>
    private sealed class FailingRunner(Native.ICommandRunner inner, string prefix) : Native.ICommandRunner
    {
        private int _failed;

        public Task<Native.CommandResult> RunAsync(Native.CommandInvocation command, CancellationToken cancellationToken = default) =>
            Native.RecordingCommandRunner.Line(command).StartsWith(prefix, StringComparison.Ordinal) && Interlocked.Exchange(ref _failed, 1) == 0
                ? Task.FromResult(new Native.CommandResult(1, "", "injected failure"))
                : inner.RunAsync(command, cancellationToken);
    }

    /// <summary>
    /// Issue 10 item 6: an inactive ufw installed beside an active nftables ruleset set by this module. Auto-detection
    /// must pick nftables (the firewall in force), and the exposure audit's firewall check must then see the rule.
    /// </summary>
    [SkippableFact]
    public async Task Auto_detection_picks_the_active_nftables_ruleset_over_an_installed_inactive_ufw()
    {
        Require.Root();
        Require.Tool("ufw");
        Require.Tool("nft");
        Require.Tool("ip");
        var before = HostFirewallSnapshot.Take();
        await using (var lab = FirewallLab.Create())
        {
            var env = lab.Ufw();
            var conf = Path.Combine(env.UfwRoot, "etc/ufw/ufw.conf");
            File.WriteAllLines(conf, File.ReadAllLines(conf).Select(l => l.StartsWith("ENABLED=", StringComparison.Ordinal) ? "ENABLED=no" : l));
            env.NftablesIncludeDirectory = Path.Combine(lab.Scratch, "nftables.d");
            var manager = new FirewallManager(env);

            // Nothing in force yet: the installed ufw is the one to manage (and to enable with -EnableFirewall).
            var first = await manager.DetectWithReasonAsync();
            Assert.Equal(FirewallBackendKind.Ufw, first.Kind);
            Assert.Contains("inactive", first.Reason);

            var set = await manager.SetAsync(manager.Create(FirewallBackendKind.Nftables), Request(FirewallLab.TrustedRanges, false));
            Assert.True(set.Active, string.Join("; ", set.Warnings));

            var detected = await manager.DetectWithReasonAsync();
            Assert.Equal(FirewallBackendKind.Nftables, detected.Kind);
            Assert.Contains("ollama_guard_11434", detected.Reason);
            Assert.Contains("ufw is installed but inactive", detected.Reason);

            var status = await new FirewallStatusReader(env).GetStatusAsync(FirewallLab.Port, default);
            Assert.True(status.Restricted, status.Detail);
            Assert.Equal("Nftables", status.Backend);

            // Named explicitly, the inactive ufw is what is audited: not restricted.
            var ufw = await new FirewallStatusReader(env, FirewallBackendKind.Ufw).GetStatusAsync(FirewallLab.Port, default);
            Assert.False(ufw.Restricted, ufw.Detail);
            Assert.Contains("-FirewallBackend Ufw", ufw.Detail);

            Assert.True((await manager.RemoveAsync(manager.Create(FirewallBackendKind.Nftables), FirewallLab.Port)).Changed);
        }

        Assert.Equal(before, HostFirewallSnapshot.Take());
    }

    private static FirewallRequest Request(string[] allow, bool enable) =>
        new(FirewallLab.Port, AllowFrom.Parse(allow)) { EnableFirewall = enable };
}
