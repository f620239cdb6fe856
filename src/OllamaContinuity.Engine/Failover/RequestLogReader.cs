using System.Text.Json;
using System.Text.RegularExpressions;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Failover;

/// <summary>One attempt of a logged request (the request log's <c>attempts</c> array).</summary>
public sealed class RequestLogAttempt
{
    public string Backend { get; init; } = "";
    public string? Endpoint { get; init; }
    public string Outcome { get; init; } = "";
    public string FailureClass { get; init; } = "";
    public int? StatusCode { get; init; }
    public double LatencyMs { get; init; }

    public override string ToString() =>
        Outcome == "Success" ? $"{Backend}:Success({LatencyMs:0}ms)" : $"{Backend}:{(FailureClass.Length > 0 ? FailureClass : Outcome)}{(StatusCode is int s ? "/" + s : "")}({LatencyMs:0}ms)";
}

/// <summary>One request as the request log recorded it: what Get-AiRequestLog returns.</summary>
public sealed class RequestLogEntry
{
    public DateTimeOffset Timestamp { get; init; }
    public string RequestId { get; init; } = "";
    public string? Workflow { get; init; }

    /// <summary>Cloud, Ollama, or None (every backend failed).</summary>
    public string Backend { get; init; } = "";
    public string? Endpoint { get; init; }
    public string? Model { get; init; }
    public double LatencyMs { get; init; }

    /// <summary>Why the cloud did not serve it (empty when it did).</summary>
    public string FailoverReason { get; init; } = "";

    /// <summary>True when the cloud was skipped on purpose (manual contingency or an open circuit).</summary>
    public bool Contingency { get; init; }
    public string? ContingencySource { get; init; }
    public bool Stream { get; init; }

    /// <summary>The error of a request that no backend served.</summary>
    public string? Error { get; init; }
    public ItemList<RequestLogAttempt> Attempts { get; init; } = [];

    /// <summary>The attempts in one line: <c>Cloud:ServerError/503(12ms) -> Ollama:Success(340ms)</c>.</summary>
    public string Route => string.Join(" -> ", Attempts);

    /// <summary>True when the cloud did not serve it and Ollama did.</summary>
    public bool FailedOver => Backend == nameof(BackendRole.Ollama);

    /// <summary>Only when the request was sent with -LogContent.</summary>
    public string? SystemPrompt { get; init; }

    /// <summary>Only when the request was sent with -LogContent.</summary>
    public ItemList<ChatMessage> Messages { get; init; } = [];

    /// <summary>Only when the request was sent with -LogContent.</summary>
    public string? Output { get; init; }

    /// <summary>The line of the log file it was read from.</summary>
    public int LineNumber { get; init; }

    public override string ToString() => $"{Timestamp:u} {Workflow} {Backend} {FailoverReason}".TrimEnd();
}

/// <summary>What to read from the request log. Null or empty members do not filter.</summary>
public sealed record RequestLogFilter
{
    /// <summary>Entries at or after this time. The default value is null (from the start).</summary>
    public DateTimeOffset? Since { get; init; }

    /// <summary>Entries before this time. The default value is null (to the end).</summary>
    public DateTimeOffset? Until { get; init; }

    /// <summary>Workflow names or wildcard patterns (<c>nightly-*</c>), case-insensitive. The default value is null.</summary>
    public IReadOnlyList<string>? Workflow { get; init; }

    /// <summary>Cloud, Ollama or None. The default value is null.</summary>
    public IReadOnlyList<string>? Backend { get; init; }

    /// <summary>Failover reasons or wildcard patterns (<c>*Timeout</c>); <c>*</c> is every request that failed over. The default value is null.</summary>
    public IReadOnlyList<string>? FailoverReason { get; init; }

    /// <summary>Only the last N matching entries. The default value is 0 (all).</summary>
    public int Last { get; init; }

    internal bool Matches(RequestLogEntry e) =>
        (Since is not { } s || e.Timestamp >= s)
        && (Until is not { } u || e.Timestamp < u)
        && Any(Workflow, e.Workflow)
        && Any(Backend, e.Backend)
        && Any(FailoverReason, e.FailoverReason.Length == 0 ? null : e.FailoverReason);

    private static bool Any(IReadOnlyList<string>? patterns, string? value) =>
        patterns is not { Count: > 0 } || (value is not null && patterns.Any(p => Wildcard(p, value)));

    private static bool Wildcard(string pattern, string value) =>
        pattern.Contains('*') || pattern.Contains('?')
            ? Regex.IsMatch(value, "^" + Regex.Escape(pattern).Replace("\\*", ".*").Replace("\\?", ".") + "$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))
            : string.Equals(pattern, value, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Reads the request log (<see cref="RequestLog"/>) back as <see cref="RequestLogEntry"/> objects, oldest first. It is
/// tolerant: a line that is not a request log entry (cut short by a crash, edited by hand) is skipped and reported
/// through <c>onBadLine</c> with its line number; the rest of the file is still read.
/// </summary>
public static class RequestLogReader
{
    public static IEnumerable<RequestLogEntry> Read(string path, RequestLogFilter filter, Action<int, string>? onBadLine = null)
    {
        var matching = Matching(path, filter, onBadLine);
        return filter.Last > 0 ? matching.TakeLast(filter.Last) : matching;
    }

    private static IEnumerable<RequestLogEntry> Matching(string path, RequestLogFilter filter, Action<int, string>? onBadLine)
    {
        foreach (var line in NumberedJsonLines.Read(path))
        {
            RequestLogEntry entry;
            try
            {
                entry = Parse(line);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                onBadLine?.Invoke(line.Number, e is JsonException ? "not valid JSON" : e.Message);
                continue;
            }

            if (filter.Matches(entry))
            {
                yield return entry;
            }
        }
    }

    private static RequestLogEntry Parse(NumberedLine line)
    {
        using var doc = JsonDocument.Parse(line.Text);
        var r = doc.RootElement;
        if (r.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("not a JSON object");
        }

        if (!r.TryGetProperty("timestamp", out var ts) || ts.ValueKind != JsonValueKind.String || !ts.TryGetDateTimeOffset(out var timestamp))
        {
            throw new FormatException("no valid timestamp");
        }

        var attempts = new ItemList<RequestLogAttempt>();
        if (r.TryGetProperty("attempts", out var arr) && arr.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in arr.EnumerateArray().Where(a => a.ValueKind == JsonValueKind.Object))
            {
                attempts.Add(new RequestLogAttempt
                {
                    Backend = S(a, "backend") ?? "",
                    Endpoint = S(a, "endpoint"),
                    Outcome = S(a, "outcome") ?? "",
                    FailureClass = S(a, "failureClass") ?? "",
                    StatusCode = a.TryGetProperty("statusCode", out var sc) && sc.ValueKind == JsonValueKind.Number ? sc.GetInt32() : null,
                    LatencyMs = N(a, "latencyMs"),
                });
            }
        }

        var messages = new ItemList<ChatMessage>();
        if (r.TryGetProperty("messages", out var ms) && ms.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in ms.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.Object))
            {
                messages.Add(new ChatMessage(S(m, "role") ?? "", S(m, "content") ?? ""));
            }
        }

        return new RequestLogEntry
        {
            Timestamp = timestamp,
            RequestId = S(r, "requestId") ?? "",
            Workflow = S(r, "workflow"),
            Backend = S(r, "backend") ?? "",
            Endpoint = S(r, "endpoint"),
            Model = S(r, "model"),
            LatencyMs = N(r, "latencyMs"),
            FailoverReason = S(r, "failoverReason") ?? "",
            Contingency = r.TryGetProperty("contingency", out var c) && c.ValueKind == JsonValueKind.True,
            ContingencySource = S(r, "contingencySource"),
            Stream = r.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True,
            Error = S(r, "error"),
            Attempts = attempts,
            SystemPrompt = S(r, "systemPrompt"),
            Messages = messages,
            Output = S(r, "output"),
            LineNumber = line.Number,
        };
    }

    private static string? S(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static double N(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
}
