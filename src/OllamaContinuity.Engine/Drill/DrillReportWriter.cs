using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Drill;

/// <summary>The file formats of a drill report.</summary>
public enum DrillReportFormat
{
    Markdown,
    Json,
    Html,
    /// <summary>One row per probe (with its path, backend, failover reason and latency), for a spreadsheet.</summary>
    Csv,
}

/// <summary>Writes a <see cref="DrillReport"/> as Markdown, JSON or HTML, ready to attach to the drill record.</summary>
public static class DrillReportWriter
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The format for a path: .json, .htm/.html, .csv, else Markdown.</summary>
    public static DrillReportFormat FormatFor(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => DrillReportFormat.Json,
        ".csv" => DrillReportFormat.Csv,
        ".html" or ".htm" => DrillReportFormat.Html,
        _ => DrillReportFormat.Markdown,
    };

    public static void Write(DrillReport report, string path, DrillReportFormat? format = null)
    {
        report.ReportPath = Path.GetFullPath(path);
        var text = Render(report, format ?? FormatFor(path));
        OwnerOnlyFile.WriteAllBytesAtomic(path, Encoding.UTF8.GetBytes(text));
    }

    public static string Render(DrillReport r, DrillReportFormat format) => format switch
    {
        DrillReportFormat.Json => JsonSerializer.Serialize(r, Json),
        DrillReportFormat.Html => Html(r),
        DrillReportFormat.Csv => Csv(r),
        _ => Markdown(r),
    };

    /// <summary>The columns of the CSV report, in order.</summary>
    public static readonly IReadOnlyList<string> CsvColumns =
        ["DrillId", "Sequence", "Phase", "Path", "Probe", "Timestamp", "Backend", "FailoverReason", "FailoverLineLogged", "QualityPassed", "Passed", "LatencyMs", "RequestId", "Error"];

    private static string Csv(DrillReport r)
    {
        // RFC 4180: every field quoted, quotes doubled, CRLF line ends; a cell that a spreadsheet would run as a formula
        // (=, +, -, @ first: the error text may come from a server) gets a leading apostrophe.
        static string F(string? s)
        {
            var t = TerminalSafe.Clean(s) ?? "";
            if (t.Length > 0 && t[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
            {
                t = "'" + t;
            }

            return "\"" + t.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        }

        var sb = new StringBuilder();
        sb.Append(string.Join(",", CsvColumns.Select(F))).Append("\r\n");
        foreach (var p in r.Probes)
        {
            string[] row =
            [
                r.DrillId, p.Sequence.ToString(CultureInfo.InvariantCulture), p.Phase, p.Path, p.Probe, p.Timestamp.ToString("o", CultureInfo.InvariantCulture), p.Backend ?? "None",
                p.FailoverReason ?? "", p.FailoverLineLogged ? "true" : "false", p.QualityPassed ? "true" : "false", p.Passed ? "true" : "false",
                p.LatencyMs.ToString("0.#", CultureInfo.InvariantCulture), p.RequestId ?? "", p.Error ?? "",
            ];
            sb.Append(string.Join(",", row.Select(F))).Append("\r\n");
        }

        return sb.ToString();
    }

    private static string S(double? seconds) => seconds is { } s ? s.ToString("0.###", CultureInfo.InvariantCulture) + " s" : "n/a";

    private static IEnumerable<(string, string)> Summary(DrillReport r) =>
    [
        ("Outcome", r.Outcome),
        ("Drill id", r.DrillId),
        ("Host", r.Host),
        ("Started", r.StartedAt.ToString("u", CultureInfo.InvariantCulture)),
        ("Ended", r.EndedAt.ToString("u", CultureInfo.InvariantCulture)),
        ("Block method", r.BlockMethod + (r.Firewall is null ? "" : $" ({r.Firewall})")),
        ("Cloud endpoint", r.CloudEndpoint + (r.BlockedAddresses.Count == 0 ? "" : $" [{string.Join(", ", r.BlockedAddresses)}]")),
        ("Ollama", string.Join(", ", r.OllamaEndpoints)),
        ("Planned block", S(r.PlannedDurationSeconds) + ", probes every " + S(r.IntervalSeconds)),
        ("Probe paths", r.Gateway is null ? "in process" : $"in process and through the gateway at {r.Gateway}"),
        ("Time to fail over", S(r.TimeToFailoverSeconds)),
        ("Time to recover", S(r.TimeToRecoverSeconds)),
        .. (r.Gateway is null ? Array.Empty<(string, string)>() :
        [
            ("Time to fail over (gateway)", S(r.GatewayTimeToFailoverSeconds)),
            ("Time to recover (gateway)", S(r.GatewayTimeToRecoverSeconds)),
            ("Gateway probes during the block", $"{r.Probes.Count(p => p.Phase == "Failover" && p.Path == DrillPath.Gateway && p.Passed)} passed, {r.Probes.Count(p => p.Phase == "Failover" && p.Path == DrillPath.Gateway && !p.Passed)} failed"),
        ]),
        ("Probes during the block", $"{r.ProbesPassed} passed, {r.ProbesFailed} failed"),
    ];

    private static string Markdown(DrillReport r)
    {
        static string Cell(string? s) => MarkdownText(s);
        var sb = new StringBuilder();
        sb.Append("# Failover drill report: ").Append(r.Outcome).Append("\n\n");
        sb.Append("| Item | Value |\n|---|---|\n");
        foreach (var (k, v) in Summary(r)) sb.Append("| ").Append(k).Append(" | ").Append(Cell(v)).Append(" |\n");
        sb.Append("\n## Steps\n\n| Step | Outcome | Started | Duration | Detail |\n|---|---|---|---|---|\n");
        foreach (var s in r.Steps) sb.Append($"| {s.Name} | {s.Outcome} | {s.StartedAt:HH:mm:ss} | {S(s.DurationSeconds)} | {Cell(s.Detail)} |\n");
        sb.Append("\n## Probes\n\n| # | Phase | Path | Probe | Time | Backend | Failover reason | Failover line | Quality | Passed | Latency ms | Error |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var p in r.Probes)
            sb.Append($"| {p.Sequence} | {p.Phase} | {p.Path} | {Cell(p.Probe)} | {p.Timestamp:HH:mm:ss} | {p.Backend} | {p.FailoverReason} | {(p.FailoverLineLogged ? "yes" : "no")} | {(p.QualityPassed ? "ok" : "FAIL")} | {(p.Passed ? "yes" : "NO")} | {p.LatencyMs:0} | {Cell(p.Error)} |\n");
        sb.Append("\n## Alerts\n\n");
        if (r.Alerts.Count == 0) sb.Append("No alert deliveries recorded during the block.\n");
        else
        {
            sb.Append("| Time | Kind | Channel | Target | Delivered | Error |\n|---|---|---|---|---|---|\n");
            foreach (var a in r.Alerts) sb.Append($"| {a.Timestamp:HH:mm:ss} | {a.Kind} | {a.Channel} | {Cell(a.Target)} | {(a.Succeeded ? "yes" : "NO")} | {Cell(a.Error)} |\n");
        }

        return sb.ToString();
    }

    /// <summary>
    /// Text for a Markdown table cell: control characters and escape sequences removed (<see cref="TerminalSafe"/>),
    /// HTML encoded (Markdown renders raw HTML, so a hostile server's <c>&lt;script&gt;</c> or <c>&lt;img&gt;</c> stays
    /// text), and Markdown's own syntax (links, emphasis, code, table pipes) escaped with a backslash.
    /// </summary>
    internal static string MarkdownText(string? s)
    {
        var text = WebUtility.HtmlEncode(TerminalSafe.Clean(s) ?? "");
        var sb = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c is '\\' or '`' or '*' or '_' or '[' or ']' or '|' or '~')
            {
                sb.Append('\\');
            }

            sb.Append(c);
        }

        return sb.ToString();
    }

    private static string Html(DrillReport r)
    {
        static string E(string? s) => WebUtility.HtmlEncode(TerminalSafe.Clean(s) ?? "");
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Failover drill ").Append(E(r.DrillId)).Append("</title>\n");
        sb.Append("<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #999;padding:2px 6px;text-align:left}.Failed,.NO,.FAIL{color:#b00;font-weight:bold}.Passed{color:#060}</style></head><body>\n");
        sb.Append("<h1>Failover drill report: <span class=\"").Append(E(r.Outcome)).Append("\">").Append(E(r.Outcome)).Append("</span></h1>\n<table>\n");
        foreach (var (k, v) in Summary(r)) sb.Append("<tr><th>").Append(E(k)).Append("</th><td>").Append(E(v)).Append("</td></tr>\n");
        sb.Append("</table>\n<h2>Timeline</h2>\n").Append(Timeline(r)).Append('\n');
        sb.Append("<h2>Steps</h2>\n<table><tr><th>Step</th><th>Outcome</th><th>Started</th><th>Duration</th><th>Detail</th></tr>\n");
        foreach (var s in r.Steps) sb.Append($"<tr><td>{E(s.Name)}</td><td class=\"{E(s.Outcome)}\">{E(s.Outcome)}</td><td>{s.StartedAt:HH:mm:ss}</td><td>{E(S(s.DurationSeconds))}</td><td>{E(s.Detail)}</td></tr>\n");
        sb.Append("</table>\n<h2>Probes</h2>\n<table><tr><th>#</th><th>Phase</th><th>Path</th><th>Probe</th><th>Time</th><th>Backend</th><th>Failover reason</th><th>Failover line</th><th>Quality</th><th>Passed</th><th>Latency ms</th><th>Error</th></tr>\n");
        foreach (var p in r.Probes)
            sb.Append($"<tr class=\"path-{E(p.Path)}\"><td>{p.Sequence}</td><td>{E(p.Phase)}</td><td>{E(p.Path)}</td><td>{E(p.Probe)}</td><td>{p.Timestamp:HH:mm:ss}</td><td>{E(p.Backend)}</td><td>{E(p.FailoverReason)}</td><td>{(p.FailoverLineLogged ? "yes" : "no")}</td><td class=\"{(p.QualityPassed ? "" : "FAIL")}\">{(p.QualityPassed ? "ok" : "FAIL")}</td><td class=\"{(p.Passed ? "" : "NO")}\">{(p.Passed ? "yes" : "NO")}</td><td>{p.LatencyMs:0}</td><td>{E(p.Error)}</td></tr>\n");
        sb.Append("</table>\n<h2>Alerts</h2>\n<table><tr><th>Time</th><th>Kind</th><th>Channel</th><th>Target</th><th>Delivered</th><th>Error</th></tr>\n");
        foreach (var a in r.Alerts) sb.Append($"<tr><td>{a.Timestamp:HH:mm:ss}</td><td>{a.Kind}</td><td>{E(a.Channel)}</td><td>{E(a.Target)}</td><td>{(a.Succeeded ? "yes" : "NO")}</td><td>{E(a.Error)}</td></tr>\n");
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }

    /// <summary>The colours of the timeline, also what a rendering test looks for in a screenshot.</summary>
    public static class TimelineColors
    {
        public const string Block = "#f6d5d5";
        public const string Cloud = "#1f6fd1";
        public const string Ollama = "#e07b00";
        public const string NoBackend = "#c00000";
        public const string Recovery = "#0a8a2a";
    }

    /// <summary>
    /// An inline SVG timeline of the drill (no script, no external asset, so the report opens anywhere and mails as
    /// one file): time from left to right, the block window shaded, one mark per probe (circle: cloud, square:
    /// Ollama, cross: no backend or failed) placed by time and latency, and the recovery point as a green line.
    /// Probes through the gateway are hollow marks (a dashed cross when failed) with the class "gateway", and the
    /// gateway's recovery is a dashed green line. Every probe mark has the class "probe", a data-path attribute and a
    /// title with its details.
    /// </summary>
    public static string Timeline(DrillReport r)
    {
        static string N(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        const double width = 800, height = 260, left = 60, right = 20, top = 20, bottom = 50;
        var plotW = width - left - right;
        var plotH = height - top - bottom;

        var block = r.Steps.FirstOrDefault(s => s.Name == "Block");
        var unblock = r.Steps.FirstOrDefault(s => s.Name == "Unblock");
        DateTimeOffset? blockStart = block?.StartedAt;
        DateTimeOffset? blockEnd = unblock is null ? null : unblock.StartedAt.AddSeconds(unblock.DurationSeconds);
        DateTimeOffset? recovered = blockEnd is { } be && r.TimeToRecoverSeconds is { } ttr ? be.AddSeconds(ttr) : null;
        DateTimeOffset? gatewayRecovered = blockEnd is { } be2 && r.GatewayTimeToRecoverSeconds is { } gttr ? be2.AddSeconds(gttr) : null;

        var times = r.Probes.Select(p => p.Timestamp).Concat(r.Steps.Select(s => s.StartedAt)).Where(t => t != default).ToList();
        if (blockEnd is { } e1) times.Add(e1);
        if (recovered is { } rc) times.Add(rc);
        if (gatewayRecovered is { } grc) times.Add(grc);
        var t0 = times.Count > 0 ? times.Min() : r.StartedAt;
        var t1 = times.Count > 0 ? times.Max() : r.EndedAt;
        var span = Math.Max(0.001, (t1 - t0).TotalSeconds);
        double X(DateTimeOffset t) => left + Math.Clamp((t - t0).TotalSeconds / span, 0, 1) * plotW;
        var maxLatency = Math.Max(1, r.Probes.Select(p => p.LatencyMs).DefaultIfEmpty(1).Max());
        double Y(double ms) => top + plotH - (Math.Clamp(ms, 0, maxLatency) / maxLatency * plotH);

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\" width=\"{N(width)}\" height=\"{N(height)}\" viewBox=\"0 0 {N(width)} {N(height)}\" role=\"img\" aria-label=\"Drill timeline\" font-family=\"sans-serif\" font-size=\"11\">\n");
        sb.Append($"<rect x=\"0\" y=\"0\" width=\"{N(width)}\" height=\"{N(height)}\" fill=\"#ffffff\"/>\n");
        if (blockStart is { } bs)
        {
            var x1 = X(bs);
            var x2 = X(blockEnd ?? t1);
            sb.Append($"<rect class=\"block-window\" x=\"{N(x1)}\" y=\"{N(top)}\" width=\"{N(Math.Max(1, x2 - x1))}\" height=\"{N(plotH)}\" fill=\"{TimelineColors.Block}\"><title>Cloud blocked: {E(bs.ToString("HH:mm:ss", CultureInfo.InvariantCulture))} to {E((blockEnd ?? t1).ToString("HH:mm:ss", CultureInfo.InvariantCulture))}</title></rect>\n");
            sb.Append($"<text x=\"{N(x1 + 4)}\" y=\"{N(top + 12)}\" fill=\"#900\">cloud blocked</text>\n");
        }

        // Axes: latency up the left, seconds since the first event along the bottom.
        sb.Append($"<line x1=\"{N(left)}\" y1=\"{N(top)}\" x2=\"{N(left)}\" y2=\"{N(top + plotH)}\" stroke=\"#333\"/>\n");
        sb.Append($"<line x1=\"{N(left)}\" y1=\"{N(top + plotH)}\" x2=\"{N(left + plotW)}\" y2=\"{N(top + plotH)}\" stroke=\"#333\"/>\n");
        sb.Append($"<text x=\"{N(left - 4)}\" y=\"{N(top + 4)}\" text-anchor=\"end\">{N(maxLatency)} ms</text>\n");
        sb.Append($"<text x=\"{N(left - 4)}\" y=\"{N(top + plotH)}\" text-anchor=\"end\">0</text>\n");
        sb.Append($"<text x=\"{N(left)}\" y=\"{N(top + plotH + 14)}\">0 s</text>\n");
        sb.Append($"<text x=\"{N(left + plotW)}\" y=\"{N(top + plotH + 14)}\" text-anchor=\"end\">{N(span)} s</text>\n");

        if (recovered is { } rec)
        {
            var x = X(rec);
            sb.Append($"<line class=\"recovery\" x1=\"{N(x)}\" y1=\"{N(top)}\" x2=\"{N(x)}\" y2=\"{N(top + plotH)}\" stroke=\"{TimelineColors.Recovery}\" stroke-width=\"3\"><title>Cloud served again {E(S(r.TimeToRecoverSeconds))} after the block was removed</title></line>\n");
            sb.Append($"<text x=\"{N(Math.Min(x + 4, width - 70))}\" y=\"{N(top + 26)}\" fill=\"{TimelineColors.Recovery}\">recovered</text>\n");
        }

        if (gatewayRecovered is { } grec)
        {
            var x = X(grec);
            sb.Append($"<line class=\"recovery gateway\" x1=\"{N(x)}\" y1=\"{N(top)}\" x2=\"{N(x)}\" y2=\"{N(top + plotH)}\" stroke=\"{TimelineColors.Recovery}\" stroke-width=\"2\" stroke-dasharray=\"6,3\"><title>The gateway served from the cloud again {E(S(r.GatewayTimeToRecoverSeconds))} after the block was removed</title></line>\n");
            // Right of its line, or left of it (right-aligned) near the right edge.
            sb.Append(x + 120 < width
                ? $"<text x=\"{N(x + 4)}\" y=\"{N(top + 40)}\" fill=\"{TimelineColors.Recovery}\">gateway recovered</text>\n"
                : $"<text x=\"{N(x - 4)}\" y=\"{N(top + 40)}\" text-anchor=\"end\" fill=\"{TimelineColors.Recovery}\">gateway recovered</text>\n");
        }

        foreach (var p in r.Probes)
        {
            var x = X(p.Timestamp == default ? t0 : p.Timestamp);
            var y = Y(p.LatencyMs);
            var gw = p.Path == DrillPath.Gateway;
            var title = $"<title>#{p.Sequence} {E(p.Phase)} {(gw ? "through the gateway" : "in process")} {E(p.Probe)}: {E(p.Backend ?? "no backend")} {p.LatencyMs.ToString("0", CultureInfo.InvariantCulture)} ms{(p.Passed ? "" : " FAILED")}{(string.IsNullOrEmpty(p.FailoverReason) ? "" : " (" + E(p.FailoverReason) + ")")}</title>";
            var data = $"data-sequence=\"{p.Sequence}\" data-backend=\"{E(p.Backend ?? "None")}\" data-path=\"{E(p.Path)}\"";
            var cls = gw ? " gateway" : "";
            // Through the gateway: the same shape and colour, hollow (white inside, a coloured outline).
            string Paint(string color) => gw ? $"fill=\"#ffffff\" stroke=\"{color}\" stroke-width=\"2.5\"" : $"fill=\"{color}\"";
            if (!p.Passed || p.Backend is null)
            {
                sb.Append($"<path class=\"probe failed{cls}\" {data} d=\"M{N(x - 5)},{N(y - 5)} L{N(x + 5)},{N(y + 5)} M{N(x - 5)},{N(y + 5)} L{N(x + 5)},{N(y - 5)}\" stroke=\"{TimelineColors.NoBackend}\" stroke-width=\"3\"{(gw ? " stroke-dasharray=\"3,1.5\"" : "")}>{title}</path>\n");
            }
            else if (p.Backend == nameof(BackendRole.Ollama))
            {
                sb.Append($"<rect class=\"probe ollama{cls}\" {data} x=\"{N(x - 5)}\" y=\"{N(y - 5)}\" width=\"10\" height=\"10\" {Paint(TimelineColors.Ollama)}>{title}</rect>\n");
            }
            else
            {
                sb.Append($"<circle class=\"probe cloud{cls}\" {data} cx=\"{N(x)}\" cy=\"{N(y)}\" r=\"6\" {Paint(TimelineColors.Cloud)}>{title}</circle>\n");
            }
        }

        // Legend.
        var ly = height - 12;
        sb.Append($"<circle cx=\"{N(left + 6)}\" cy=\"{N(ly - 4)}\" r=\"5\" fill=\"{TimelineColors.Cloud}\"/><text x=\"{N(left + 16)}\" y=\"{N(ly)}\">Cloud</text>\n");
        sb.Append($"<rect x=\"{N(left + 70)}\" y=\"{N(ly - 9)}\" width=\"10\" height=\"10\" fill=\"{TimelineColors.Ollama}\"/><text x=\"{N(left + 86)}\" y=\"{N(ly)}\">Ollama</text>\n");
        sb.Append($"<path d=\"M{N(left + 146)},{N(ly - 9)} L{N(left + 156)},{N(ly + 1)} M{N(left + 146)},{N(ly + 1)} L{N(left + 156)},{N(ly - 9)}\" stroke=\"{TimelineColors.NoBackend}\" stroke-width=\"3\"/><text x=\"{N(left + 162)}\" y=\"{N(ly)}\">failed</text>\n");
        sb.Append($"<rect x=\"{N(left + 216)}\" y=\"{N(ly - 9)}\" width=\"14\" height=\"10\" fill=\"{TimelineColors.Block}\"/><text x=\"{N(left + 236)}\" y=\"{N(ly)}\">cloud blocked</text>\n");
        sb.Append($"<line x1=\"{N(left + 330)}\" y1=\"{N(ly - 10)}\" x2=\"{N(left + 330)}\" y2=\"{N(ly + 2)}\" stroke=\"{TimelineColors.Recovery}\" stroke-width=\"3\"/><text x=\"{N(left + 338)}\" y=\"{N(ly)}\">recovered</text>\n");
        if (r.Gateway is not null || r.Probes.Any(p => p.Path == DrillPath.Gateway))
        {
            sb.Append($"<circle cx=\"{N(left + 426)}\" cy=\"{N(ly - 4)}\" r=\"5\" fill=\"#ffffff\" stroke=\"#333\" stroke-width=\"2\"/><text x=\"{N(left + 436)}\" y=\"{N(ly)}\">hollow: through the gateway</text>\n");
        }
        else
        {
            sb.Append($"<text x=\"{N(left + plotW)}\" y=\"{N(ly)}\" text-anchor=\"end\">latency (ms) by time</text>\n");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }
}
