using System.Globalization;
using System.Net;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// iptables and ip6tables: an own chain <c>OLLAMA-GUARD-PORT</c> (<c>-i lo -j RETURN</c>, one <c>-s CIDR -j RETURN</c>
/// per allowed source, then <c>-j DROP</c>), jumped to from INPUT exactly once for TCP to the port (checked with
/// <c>-C</c> before <c>-I INPUT 1</c>). RETURN hands the packet back to INPUT, so the chain only restricts.
/// iptables rules are not persistent by themselves: save them with netfilter-persistent or iptables-save.
/// </summary>
public sealed class IptablesBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    public override FirewallBackendKind Kind => FirewallBackendKind.Iptables;

    /// <summary>
    /// A change of more than this many rules in one family is applied with one iptables-restore (the whole chain,
    /// atomically) instead of one iptables call per rule. The default value is 16.
    /// </summary>
    public const int BatchThreshold = 16;

    public static string ChainName(int port) => "OLLAMA-GUARD-" + port.ToString(CultureInfo.InvariantCulture);

    public override string SourceOfTruth(int port) => $"iptables -S {ChainName(port)}; ip6tables -S {ChainName(port)}; -C INPUT";

    private sealed record Family(string Tool, bool ChainExists, IReadOnlyList<string> Rules, int Jumps);

    private sealed class IptState : FirewallState
    {
        public required Family V4 { get; init; }
        public required Family V6 { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var v4 = await ReadFamily("iptables", port, cancellationToken).ConfigureAwait(false);
        var v6 = await ReadFamily("ip6tables", port, cancellationToken).ConfigureAwait(false);
        var sources = new List<string>();
        foreach (var f in new[] { v4, v6 })
        {
            sources.AddRange(f.Rules.Select(r => r.Split(' ')).Where(t => t.Length == 4 && t[0] == "-s" && t[2] == "-j" && t[3] == "RETURN").Select(t => t[1]));
        }

        var present = v4.ChainExists || v6.ChainExists || v4.Jumps > 0 || v6.Jumps > 0;
        var expected4 = Desired(ParseAll(sources).Where(n => n.IsV4()));
        var expected6 = Desired(ParseAll(sources).Where(n => !n.IsV4()));
        return new IptState
        {
            Present = present,
            Active = v4.Jumps == 1 && v6.Jumps == 1 && v4.Rules.SequenceEqual(expected4) && v6.Rules.SequenceEqual(expected6) && sources.Count > 0,
            AllowFrom = ParseAll(sources),
            V4 = v4,
            V6 = v6,
            Warnings = present ? ["iptables rules do not survive a reboot by themselves: save them (netfilter-persistent save, or iptables-save/ip6tables-save)."] : [],
        };
    }

    private async Task<Family> ReadFamily(string tool, int port, CancellationToken cancellationToken)
    {
        var chain = ChainName(port);
        var list = await QueryAsync(cancellationToken, tool, "-w", "-S", chain).ConfigureAwait(false);
        var rules = list.Succeeded
            ? Lines(list.StandardOutput).Where(l => l.StartsWith("-A " + chain + " ", StringComparison.Ordinal)).Select(l => l[(chain.Length + 4)..]).ToArray()
            : [];
        var check = await QueryAsync(cancellationToken, tool, ["-w", "-C", .. Jump(port)]).ConfigureAwait(false);
        var jumps = 0;
        if (check.Succeeded)
        {
            var input = await QueryAsync(cancellationToken, tool, "-w", "-S", "INPUT").ConfigureAwait(false);
            jumps = Math.Max(1, Lines(input.StandardOutput).Count(l => l.StartsWith("-A INPUT ", StringComparison.Ordinal) && l.EndsWith(" -j " + chain, StringComparison.Ordinal)));
        }

        return new Family(tool, list.Succeeded, rules, jumps);
    }

    /// <summary>The chain's rules as <c>iptables -S</c> prints them after "-A CHAIN ".</summary>
    private static IReadOnlyList<string> Desired(IEnumerable<IPNetwork> sources) =>
        [
            "-i lo -j RETURN",
            .. sources.Select(n => "-s " + n.ToCidr() + " -j RETURN"),
            "-j DROP",
        ];

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (IptState)current;
        var steps = new List<FirewallStep>();
        PlanFamily(steps, s.V4, request.AllowFrom.Where(n => n.IsV4()).ToArray(), request.Port);
        PlanFamily(steps, s.V6, request.AllowFrom.Where(n => !n.IsV4()).ToArray(), request.Port);
        return steps;
    }

    private static void PlanFamily(List<FirewallStep> steps, Family f, IReadOnlyList<IPNetwork> sources, int port)
    {
        var chain = ChainName(port);
        var desired = Desired(sources);
        if (!f.ChainExists)
        {
            steps.Add(Step(Cmd(f.Tool, "-w", "-N", chain), Cmd(f.Tool, "-w", "-X", chain)));
        }

        if (!f.Rules.SequenceEqual(desired))
        {
            var current = f.Rules.Select(r => r.Split(' ')).Where(t => t.Length == 4 && t[0] == "-s").Select(t => t[1]).ToArray();
            var shapeOk = f.Rules.Count >= 2 && f.Rules[0] == desired[0] && f.Rules[^1] == desired[^1] && f.Rules.Count == current.Length + 2;
            var want = sources.Select(n => n.ToCidr()).ToArray();
            var changes = shapeOk ? want.Except(current).Count() + current.Except(want).Count() : desired.Count + (f.Rules.Count > 0 ? 1 : 0);
            if (changes > BatchThreshold)
            {
                // A large set: the whole chain in one iptables-restore (atomic; the declaration flushes the chain).
                steps.Add(Step(Restore(f.Tool, chain, desired),
                    f.Rules.Count > 0 ? Restore(f.Tool, chain, f.Rules) : Cmd(f.Tool, "-w", "-F", chain)));
            }
            else if (shapeOk)
            {
                // Same shape (lo first, DROP last): insert the new sources after lo, then delete the old ones.
                foreach (var add in want.Except(current).Reverse())
                {
                    steps.Add(Step(Cmd(f.Tool, "-w", "-I", chain, "2", "-s", add, "-j", "RETURN"), Cmd(f.Tool, "-w", "-D", chain, "-s", add, "-j", "RETURN")));
                }

                foreach (var remove in current.Except(want))
                {
                    steps.Add(Step(Cmd(f.Tool, "-w", "-D", chain, "-s", remove, "-j", "RETURN"), Cmd(f.Tool, "-w", "-I", chain, "2", "-s", remove, "-j", "RETURN")));
                }
            }
            else
            {
                if (f.Rules.Count > 0)
                {
                    // Undone (in reverse order) after the appended rules are deleted: the old rules come back in order.
                    steps.Add(Step(Cmd(f.Tool, "-w", "-F", chain), Restore(f.Tool, chain, f.Rules)));
                }

                foreach (var rule in desired)
                {
                    steps.Add(Step(Cmd(f.Tool, ["-w", "-A", chain, .. rule.Split(' ')]), Cmd(f.Tool, ["-w", "-D", chain, .. rule.Split(' ')])));
                }
            }
        }

        if (f.Jumps == 0)
        {
            steps.Add(Step(Cmd(f.Tool, ["-w", "-I", "INPUT", "1", .. JumpSpec(port)]), Cmd(f.Tool, ["-w", "-D", .. Jump(port)])));
        }

        for (var extra = 1; extra < f.Jumps; extra++)
        {
            steps.Add(Step(Cmd(f.Tool, ["-w", "-D", .. Jump(port)]), Cmd(f.Tool, ["-w", "-A", .. Jump(port)])));
        }
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (IptState)current;
        var chain = ChainName(port);
        var steps = new List<FirewallStep>();
        foreach (var f in new[] { s.V4, s.V6 })
        {
            for (var i = 0; i < f.Jumps; i++)
            {
                steps.Add(Step(Cmd(f.Tool, ["-w", "-D", .. Jump(port)]), Cmd(f.Tool, ["-w", "-I", "INPUT", "1", .. JumpSpec(port)])));
            }

            if (f.ChainExists)
            {
                steps.Add(Step(Cmd(f.Tool, "-w", "-F", chain), f.Rules.Count > 0 ? Restore(f.Tool, chain, f.Rules) : null));
                steps.Add(Step(Cmd(f.Tool, "-w", "-X", chain), Cmd(f.Tool, "-w", "-N", chain)));
            }
        }

        return steps;
    }

    /// <summary>
    /// Sets a chain's rules in order with one iptables-restore: the chain declaration creates or flushes that chain
    /// only (--noflush leaves every other chain alone), and the rules are loaded in the same commit.
    /// </summary>
    private static CommandInvocation Restore(string tool, string chain, IReadOnlyList<string> rules) =>
        Cmd(tool + "-restore", "-w", "--noflush") with
        {
            StandardInput = $"*filter\n:{chain} - [0:0]\n" + string.Concat(rules.Select(r => $"-A {chain} {r}\n")) + "COMMIT\n",
            Purpose = "set " + chain + " (" + rules.Count.ToString(CultureInfo.InvariantCulture) + " rules)",
        };

    private static string[] Jump(int port) => ["INPUT", .. JumpSpec(port)];

    private static string[] JumpSpec(int port) => ["-p", "tcp", "--dport", port.ToString(CultureInfo.InvariantCulture), "-j", ChainName(port)];
}
