using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OllamaContinuity.Native;

namespace OllamaContinuity.Drill;

/// <summary>The firewall a drill uses to block outbound traffic to the cloud.</summary>
public enum OutboundFirewall
{
    /// <summary>Linux nftables: an own table <c>inet ollamacontinuity_drill</c> with an output-hook chain.</summary>
    Nftables,
    /// <summary>Linux iptables/ip6tables: an own chain <c>OC_DRILL</c> jumped to from OUTPUT.</summary>
    Iptables,
    /// <summary>Windows Defender Firewall: one outbound block rule (netsh advfirewall, the same rule New-NetFirewallRule -Direction Outbound -Action Block makes).</summary>
    WindowsFirewall,
    /// <summary>macOS pf: the anchor <c>com.apple/ollamacontinuity-drill</c>, evaluated by the stock pf.conf's <c>anchor "com.apple/*"</c>.</summary>
    Pf,
}

/// <summary>
/// Blocks OUTBOUND TCP to a set of addresses and one port, and removes the block again, with the platform's
/// firewall through <see cref="ICommandRunner"/>. Everything it adds lives in its own table, chain, rule name or
/// anchor, so removal never touches anyone else's rules. Blocked connections are rejected (TCP reset), like a
/// provider whose endpoint refuses connections, so the drill does not wait on connect timeouts.
/// </summary>
public sealed class OutboundBlocker
{
    public const string NftTable = "ollamacontinuity_drill";
    public const string IptablesChain = "OC_DRILL";
    public const string WindowsRuleName = "OllamaContinuity Drill Block";
    public const string PfAnchor = "com.apple/ollamacontinuity-drill";

    private readonly ICommandRunner _runner;

    public OutboundBlocker(ICommandRunner runner, OutboundFirewall firewall)
    {
        _runner = runner;
        Firewall = firewall;
    }

    public OutboundFirewall Firewall { get; }

    /// <summary>
    /// The firewall of this platform: nftables when an <c>nft</c> program is on the PATH, else iptables; Windows
    /// Firewall; pf. Runs nothing (so -WhatIf touches nothing).
    /// </summary>
    public static OutboundFirewall Detect()
    {
        if (OperatingSystem.IsWindows())
        {
            return OutboundFirewall.WindowsFirewall;
        }

        if (OperatingSystem.IsMacOS())
        {
            return OutboundFirewall.Pf;
        }

        var path = (Environment.GetEnvironmentVariable("PATH") ?? "") + ":/usr/sbin:/sbin";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, "nft"))) ? OutboundFirewall.Nftables : OutboundFirewall.Iptables;
    }

    /// <summary>The firewalls a drill block may be in on this platform: Linux nftables and iptables (a marker may name either, or be damaged), Windows Firewall, pf.</summary>
    public static IReadOnlyList<OutboundFirewall> PlatformFirewalls() =>
        OperatingSystem.IsWindows() ? [OutboundFirewall.WindowsFirewall]
        : OperatingSystem.IsMacOS() ? [OutboundFirewall.Pf]
        : [OutboundFirewall.Nftables, OutboundFirewall.Iptables];

    /// <summary>The block's own fixed name in this firewall.</summary>
    public string Name => Firewall switch
    {
        OutboundFirewall.Nftables => "table inet " + NftTable,
        OutboundFirewall.Iptables => "chain " + IptablesChain,
        OutboundFirewall.WindowsFirewall => "rule '" + WindowsRuleName + "'",
        _ => "anchor " + PfAnchor,
    };

    /// <summary>
    /// Whether the block is in place, found by its fixed name: true, false, or null when the firewall cannot be read
    /// (not root, a tool failing). A firewall tool that is not installed means no block.
    /// </summary>
    public async Task<bool?> IsPresentAsync(CancellationToken ct)
    {
        switch (Firewall)
        {
            case OutboundFirewall.Nftables:
                return Verdict(await _runner.RunAsync(CommandInvocation.Of("nft", "list", "table", "inet", NftTable), ct).ConfigureAwait(false));
            case OutboundFirewall.Iptables:
                bool? any = false;
                foreach (var tool in new[] { "iptables", "ip6tables" })
                {
                    // The whole filter table: "-S CHAIN" of a missing chain fails with a message that differs between
                    // iptables-legacy ("No chain/target/match") and iptables-nft ("incompatible, use 'nft' tool").
                    var r = await _runner.RunAsync(CommandInvocation.Of(tool, "-w", "-S"), ct).ConfigureAwait(false);
                    bool? v = r.Succeeded ? r.StandardOutput.Split('\n').Any(l => l.Trim() == "-N " + IptablesChain) : r.ExitCode == 127 ? false : null;
                    any = any == true || v == true ? true : any is null || v is null ? null : false;
                }

                return any;
            case OutboundFirewall.WindowsFirewall:
                return Verdict(await _runner.RunAsync(CommandInvocation.Of("netsh", "advfirewall", "firewall", "show", "rule", "name=" + WindowsRuleName), ct).ConfigureAwait(false));
            default:
                var pf = await _runner.RunAsync(CommandInvocation.Of("pfctl", "-a", PfAnchor, "-s", "rules"), ct).ConfigureAwait(false);
                return pf.Succeeded ? pf.StandardOutput.Trim().Length > 0 : Verdict(pf);
        }
    }

    private bool? Verdict(CommandResult r) =>
        r.Succeeded ? true : r.ExitCode == 127 || IsAlreadyGone((r.StandardError + r.StandardOutput).Trim(), r.ExitCode) ? false : null;

    /// <summary>The commands that add the block (what -WhatIf prints).</summary>
    public IReadOnlyList<CommandInvocation> ApplyPlan(IReadOnlyList<IPAddress> addresses, int port)
    {
        if (addresses.Count == 0)
        {
            throw new ArgumentException("No address to block.", nameof(addresses));
        }

        var p = port.ToString(CultureInfo.InvariantCulture);
        var v4 = addresses.Where(a => a.AddressFamily == AddressFamily.InterNetwork).Select(a => a.ToString()).ToArray();
        var v6 = addresses.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6).Select(a => a.ToString()).ToArray();
        switch (Firewall)
        {
            case OutboundFirewall.Nftables:
                var sb = new StringBuilder();
                // Declaring and deleting first makes a re-run replace the table in one atomic transaction.
                sb.Append("table inet ").Append(NftTable).Append(" {}\n");
                sb.Append("delete table inet ").Append(NftTable).Append('\n');
                sb.Append("table inet ").Append(NftTable).Append(" {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n");
                if (v4.Length > 0) sb.Append("\t\tip daddr { ").Append(string.Join(", ", v4)).Append(" } tcp dport ").Append(p).Append(" reject with tcp reset\n");
                if (v6.Length > 0) sb.Append("\t\tip6 daddr { ").Append(string.Join(", ", v6)).Append(" } tcp dport ").Append(p).Append(" reject with tcp reset\n");
                sb.Append("\t}\n}\n");
                return [new CommandInvocation("nft", ["-f", "-"]) { StandardInput = sb.ToString() }];
            case OutboundFirewall.Iptables:
                var list = new List<CommandInvocation>();
                foreach (var (tool, addrs) in new[] { ("iptables", v4), ("ip6tables", v6) })
                {
                    if (addrs.Length == 0) continue;
                    list.Add(CommandInvocation.Of(tool, "-w", "-N", IptablesChain));
                    list.Add(CommandInvocation.Of(tool, "-w", "-F", IptablesChain));
                    list.AddRange(addrs.Select(a => CommandInvocation.Of(tool, "-w", "-A", IptablesChain, "-d", a, "-p", "tcp", "--dport", p, "-j", "REJECT", "--reject-with", "tcp-reset")));
                    list.Add(CommandInvocation.Of(tool, "-w", "-I", "OUTPUT", "1", "-j", IptablesChain));
                }

                return list;
            case OutboundFirewall.WindowsFirewall:
                return [CommandInvocation.Of("netsh", "advfirewall", "firewall", "add", "rule", "name=" + WindowsRuleName, "dir=out", "action=block", "protocol=TCP",
                    "remoteip=" + string.Join(',', addresses.Select(a => a.ToString())), "remoteport=" + p)];
            default:
                return
                [
                    new CommandInvocation("pfctl", ["-a", PfAnchor, "-f", "-"]) { StandardInput = $"block return out quick proto tcp from any to {{ {string.Join(" ", addresses)} }} port {p}\n" },
                    CommandInvocation.Of("pfctl", "-E"),
                ];
        }
    }

    /// <summary>The commands that remove the block; each is safe to run when the block is already gone.</summary>
    public IReadOnlyList<CommandInvocation> RemovePlan(string? pfToken = null) => Firewall switch
    {
        OutboundFirewall.Nftables => [new CommandInvocation("nft", ["delete", "table", "inet", NftTable]) { Purpose = "remove the drill block" }],
        OutboundFirewall.Iptables => new[] { "iptables", "ip6tables" }.SelectMany(t => new[]
        {
            new CommandInvocation(t, ["-w", "-D", "OUTPUT", "-j", IptablesChain]) { Purpose = "remove the drill block" },
            new CommandInvocation(t, ["-w", "-F", IptablesChain]) { Purpose = "remove the drill block" },
            new CommandInvocation(t, ["-w", "-X", IptablesChain]) { Purpose = "remove the drill block" },
        }).ToArray(),
        OutboundFirewall.WindowsFirewall => [new CommandInvocation("netsh", ["advfirewall", "firewall", "delete", "rule", "name=" + WindowsRuleName]) { Purpose = "remove the drill block" }],
        _ => new[] { new CommandInvocation("pfctl", ["-a", PfAnchor, "-F", "rules"]) { Purpose = "remove the drill block" } }
            .Concat(pfToken is null ? [] : [new CommandInvocation("pfctl", ["-X", pfToken]) { Purpose = "release the pf enable reference" }]).ToArray(),
    };

    /// <summary>Runs the apply plan; returns the pf enable token (macOS) or null. Throws with the tool's message on failure.</summary>
    public async Task<string?> ApplyAsync(IReadOnlyList<IPAddress> addresses, int port, CancellationToken ct)
    {
        string? token = null;
        foreach (var c in ApplyPlan(addresses, port))
        {
            var r = await _runner.RunAsync(c, ct).ConfigureAwait(false);
            var benign = Firewall == OutboundFirewall.Iptables && c.Arguments.Contains("-N") && r.StandardError.Contains("exists", StringComparison.OrdinalIgnoreCase);
            if (!r.Succeeded && !benign)
            {
                throw new InvalidOperationException($"Blocking the cloud failed: {c.FileName} {string.Join(' ', c.Arguments.Take(4))}... exited {r.ExitCode}: {(r.StandardError + r.StandardOutput).Trim()}");
            }

            if (Firewall == OutboundFirewall.Pf && c.Arguments.SequenceEqual(["-E"]))
            {
                token = (r.StandardError + "\n" + r.StandardOutput).Split('\n').Select(l => l.Trim())
                    .FirstOrDefault(l => l.StartsWith("Token", StringComparison.OrdinalIgnoreCase))?.Split(':').LastOrDefault()?.Trim();
            }
        }

        return token;
    }

    /// <summary>Removes the block; returns the problems (empty when it is gone). Missing tables or chains are not problems.</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(string? pfToken, CancellationToken ct)
    {
        var problems = new List<string>();
        foreach (var c in RemovePlan(pfToken))
        {
            // iptables -D removes one jump per call: repeat until it is gone.
            for (var i = 0; i < 8; i++)
            {
                var r = await _runner.RunAsync(c, ct).ConfigureAwait(false);
                var text = (r.StandardError + r.StandardOutput).Trim();
                if (r.Succeeded && c.Arguments.Contains("-D") && Firewall == OutboundFirewall.Iptables)
                {
                    continue;
                }

                if (!r.Succeeded && !IsAlreadyGone(text, r.ExitCode))
                {
                    problems.Add($"{c.FileName} {string.Join(' ', c.Arguments)} exited {r.ExitCode}: {text}");
                }

                break;
            }
        }

        return problems;
    }

    private bool IsAlreadyGone(string text, int exitCode) =>
        text.Contains("No such file", StringComparison.OrdinalIgnoreCase) || text.Contains("does not exist", StringComparison.OrdinalIgnoreCase) ||
        text.Contains("No chain/target/match", StringComparison.OrdinalIgnoreCase) || text.Contains("Bad rule", StringComparison.OrdinalIgnoreCase) ||
        text.Contains("No rules match", StringComparison.OrdinalIgnoreCase) || text.Contains("not found", StringComparison.OrdinalIgnoreCase) ||
        text.Contains("Couldn't load target", StringComparison.OrdinalIgnoreCase) ||
        (Firewall == OutboundFirewall.Iptables && exitCode == 127 /* ip6tables absent */);
}
