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

    /// <summary>The format for a path: .json, .htm/.html, else Markdown.</summary>
    public static DrillReportFormat FormatFor(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => DrillReportFormat.Json,
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
        _ => Markdown(r),
    };

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
        ("Time to fail over", S(r.TimeToFailoverSeconds)),
        ("Time to recover", S(r.TimeToRecoverSeconds)),
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
        sb.Append("\n## Probes\n\n| # | Phase | Probe | Time | Backend | Failover reason | Failover line | Quality | Passed | Latency ms | Error |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var p in r.Probes)
            sb.Append($"| {p.Sequence} | {p.Phase} | {Cell(p.Probe)} | {p.Timestamp:HH:mm:ss} | {p.Backend} | {p.FailoverReason} | {(p.FailoverLineLogged ? "yes" : "no")} | {(p.QualityPassed ? "ok" : "FAIL")} | {(p.Passed ? "yes" : "NO")} | {p.LatencyMs:0} | {Cell(p.Error)} |\n");
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
        sb.Append("</table>\n<h2>Steps</h2>\n<table><tr><th>Step</th><th>Outcome</th><th>Started</th><th>Duration</th><th>Detail</th></tr>\n");
        foreach (var s in r.Steps) sb.Append($"<tr><td>{E(s.Name)}</td><td class=\"{E(s.Outcome)}\">{E(s.Outcome)}</td><td>{s.StartedAt:HH:mm:ss}</td><td>{E(S(s.DurationSeconds))}</td><td>{E(s.Detail)}</td></tr>\n");
        sb.Append("</table>\n<h2>Probes</h2>\n<table><tr><th>#</th><th>Phase</th><th>Probe</th><th>Time</th><th>Backend</th><th>Failover reason</th><th>Failover line</th><th>Quality</th><th>Passed</th><th>Latency ms</th><th>Error</th></tr>\n");
        foreach (var p in r.Probes)
            sb.Append($"<tr><td>{p.Sequence}</td><td>{E(p.Phase)}</td><td>{E(p.Probe)}</td><td>{p.Timestamp:HH:mm:ss}</td><td>{E(p.Backend)}</td><td>{E(p.FailoverReason)}</td><td>{(p.FailoverLineLogged ? "yes" : "no")}</td><td class=\"{(p.QualityPassed ? "" : "FAIL")}\">{(p.QualityPassed ? "ok" : "FAIL")}</td><td class=\"{(p.Passed ? "" : "NO")}\">{(p.Passed ? "yes" : "NO")}</td><td>{p.LatencyMs:0}</td><td>{E(p.Error)}</td></tr>\n");
        sb.Append("</table>\n<h2>Alerts</h2>\n<table><tr><th>Time</th><th>Kind</th><th>Channel</th><th>Target</th><th>Delivered</th><th>Error</th></tr>\n");
        foreach (var a in r.Alerts) sb.Append($"<tr><td>{a.Timestamp:HH:mm:ss}</td><td>{a.Kind}</td><td>{E(a.Channel)}</td><td>{E(a.Target)}</td><td>{(a.Succeeded ? "yes" : "NO")}</td><td>{E(a.Error)}</td></tr>\n");
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }
}
