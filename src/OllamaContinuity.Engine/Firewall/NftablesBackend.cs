using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>
/// nftables: an own <c>table inet ollama_guard_PORT</c> with an IPv4 and an IPv6 interval set, loaded atomically
/// with <c>nft -f -</c> after a check with <c>nft -c -f -</c>. The ruleset starts with "table; delete table; table
/// {...}", so a re-apply replaces the table in one transaction and never duplicates. <c>iifname "lo" accept</c> comes
/// first. An accept in this table does not override drops in other tables: the table only restricts. For boot, the
/// same ruleset is written to an include file (<see cref="FirewallEnvironment.NftablesIncludeDirectory"/>).
/// </summary>
public sealed class NftablesBackend(FirewallEnvironment environment) : FirewallBackend(environment)
{
    public override FirewallBackendKind Kind => FirewallBackendKind.Nftables;

    public static string TableName(int port) => "ollama_guard_" + port.ToString(CultureInfo.InvariantCulture);

    public string? IncludeFile(int port) =>
        Environment.NftablesIncludeDirectory is { } dir ? Path.Combine(dir, "ollama-guard-" + port.ToString(CultureInfo.InvariantCulture) + ".nft") : null;

    public override string SourceOfTruth(int port) => $"nft list table inet {TableName(port)}" + (IncludeFile(port) is { } f ? "; " + f : "");

    private sealed class NftState : FirewallState
    {
        public string? Listing { get; init; }
        public bool RulesAsExpected { get; init; }
        public string? IncludeContent { get; init; }
    }

    public override async Task<FirewallState> ReadAsync(int port, CancellationToken cancellationToken)
    {
        var table = TableName(port);
        var json = await QueryAsync(cancellationToken, "nft", "-j", "list", "table", "inet", table).ConfigureAwait(false);
        string? include = null;
        if (IncludeFile(port) is { } file)
        {
            var cat = await QueryAsync(cancellationToken, "cat", file).ConfigureAwait(false);
            include = cat.Succeeded ? cat.StandardOutput : null;
        }

        if (!json.Succeeded)
        {
            return new NftState { IncludeContent = include };
        }

        var listing = await QueryAsync(cancellationToken, "nft", "list", "table", "inet", table).ConfigureAwait(false);
        var (sources, rules) = ParseJson(json.StandardOutput);
        var expected = rules == 4;
        return new NftState
        {
            Present = true,
            Active = expected && sources.Count > 0,
            AllowFrom = sources,
            Listing = listing.Succeeded ? listing.StandardOutput : null,
            RulesAsExpected = expected,
            IncludeContent = include,
            Warnings = include is null && IncludeFile(port) is { } f2 ? [$"The rules are not persisted: {f2} is missing."] : [],
        };
    }

    public override IReadOnlyList<FirewallStep> PlanSet(FirewallState current, FirewallRequest request)
    {
        var s = (NftState)current;
        var ruleset = Ruleset(request.Port, request.AllowFrom);
        var steps = new List<FirewallStep>();
        if (!(s.Present && s.RulesAsExpected && AllowFrom.SameSet(s.AllowFrom, request.AllowFrom)))
        {
            var table = TableName(request.Port);
            steps.Add(Step(Cmd("nft", "-c", "-f", "-") with { StandardInput = ruleset }));
            steps.Add(Step(Cmd("nft", "-f", "-") with { StandardInput = ruleset },
                s.Listing is { } old ? Cmd("nft", "-f", "-") with { StandardInput = $"table inet {table}\ndelete table inet {table}\n{old}", Purpose = "restore " + table } : Cmd("nft", "delete", "table", "inet", table)));
        }

        if (IncludeFile(request.Port) is { } file && s.IncludeContent != ruleset)
        {
            steps.Add(Step(Cmd("mkdir", "-p", Path.GetDirectoryName(file)!)));
            steps.Add(WriteFileStep(file, ruleset, s.IncludeContent));
        }

        return steps;
    }

    public override IReadOnlyList<FirewallStep> PlanRemove(FirewallState current, int port)
    {
        var s = (NftState)current;
        var steps = new List<FirewallStep>();
        if (s.Present)
        {
            var table = TableName(port);
            steps.Add(Step(Cmd("nft", "delete", "table", "inet", table),
                s.Listing is { } old ? Cmd("nft", "-f", "-") with { StandardInput = old, Purpose = "restore " + table } : null));
        }

        if (IncludeFile(port) is { } file && s.IncludeContent is not null)
        {
            steps.Add(Step(DeleteFile(file), WriteFile(file, s.IncludeContent)));
        }

        return steps;
    }

    /// <summary>The ruleset loaded with <c>nft -f</c> and written to the include file.</summary>
    public static string Ruleset(int port, IReadOnlyList<IPNetwork> allowFrom)
    {
        var table = TableName(port);
        var p = port.ToString(CultureInfo.InvariantCulture);
        var v4 = allowFrom.Where(n => n.IsV4()).Select(n => n.ToShort()).ToArray();
        var v6 = allowFrom.Where(n => !n.IsV4()).Select(n => n.ToShort()).ToArray();
        var sb = new StringBuilder();
        sb.Append("# Managed by OllamaContinuity (Set-OllamaFirewallRule): TCP ").Append(p).Append(" from the sets below and loopback only.\n");
        sb.Append("table inet ").Append(table).Append('\n');
        sb.Append("delete table inet ").Append(table).Append('\n');
        sb.Append("table inet ").Append(table).Append(" {\n");
        sb.Append("\tset allow4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n");
        if (v4.Length > 0)
        {
            sb.Append("\t\telements = { ").Append(string.Join(", ", v4)).Append(" }\n");
        }

        sb.Append("\t}\n\tset allow6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n");
        if (v6.Length > 0)
        {
            sb.Append("\t\telements = { ").Append(string.Join(", ", v6)).Append(" }\n");
        }

        sb.Append("\t}\n\tchain input {\n\t\ttype filter hook input priority filter - 1; policy accept;\n");
        sb.Append("\t\tiifname \"lo\" accept\n");
        sb.Append("\t\ttcp dport ").Append(p).Append(" ip saddr @allow4 accept\n");
        sb.Append("\t\ttcp dport ").Append(p).Append(" ip6 saddr @allow6 accept\n");
        sb.Append("\t\ttcp dport ").Append(p).Append(" drop\n");
        sb.Append("\t}\n}\n");
        return sb.ToString();
    }

    /// <summary>Reads the two sets' elements and counts the rules of <c>nft -j list table</c>.</summary>
    internal static (IReadOnlyList<IPNetwork> Sources, int Rules) ParseJson(string json)
    {
        var texts = new List<string>();
        var rules = 0;
        using var doc = JsonDocument.Parse(json);
        foreach (var item in doc.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (item.TryGetProperty("rule", out _))
            {
                rules++;
            }

            if (!item.TryGetProperty("set", out var set) || !set.TryGetProperty("elem", out var elems))
            {
                continue;
            }

            foreach (var e in elems.EnumerateArray())
            {
                var v = e.ValueKind == JsonValueKind.Object && e.TryGetProperty("elem", out var inner) ? inner.GetProperty("val") : e;
                if (v.ValueKind == JsonValueKind.String)
                {
                    texts.Add(v.GetString()!);
                }
                else if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("prefix", out var prefix))
                {
                    texts.Add(prefix.GetProperty("addr").GetString() + "/" + prefix.GetProperty("len").GetInt32().ToString(CultureInfo.InvariantCulture));
                }
                else if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("range", out _))
                {
                    texts.Add("range"); // not written by the module: parsed as nothing, so the set is rewritten
                }
            }
        }

        return (ParseAll(texts), rules);
    }
}
