using System.Text.Json;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Contingency;

/// <summary>One request served locally while contingency was on, as Get-AiContingencyLog returns it.</summary>
public sealed class ContingencyLogEntry
{
    public DateTimeOffset Timestamp { get; init; }
    public string RequestId { get; init; } = "";
    public string? Workflow { get; init; }
    /// <summary>Process, User, Machine, Environment or Automatic (the circuit was open).</summary>
    public string? ContingencySource { get; init; }
    public string? FailoverReason { get; init; }
    public string? Endpoint { get; init; }
    public string? Model { get; init; }
    public double LatencyMs { get; init; }
    public string? SystemPrompt { get; init; }
    public ItemList<ChatMessage> Messages { get; init; } = [];
    /// <summary>The last user message: the prompt, for tables.</summary>
    public string Prompt => Messages.LastOrDefault(m => m.Role == "user")?.Content ?? Messages.LastOrDefault()?.Content ?? "";
    public string Output { get; init; } = "";
}

/// <summary>
/// The contingency log: the prompt and the output of every request served by Ollama while contingency (manual or
/// automatic) was on, so the team can review what ran locally once the cloud is back. One JSON line per request,
/// owner-only, at <see cref="StatePaths.ContingencyLog"/>; writing never fails a request.
/// </summary>
public static class ContingencyLog
{
    public static bool ShouldRecord(AiResponse response) => response.Backend == nameof(BackendRole.Ollama) && response.Contingency;

    public static string? Append(string path, AiRequest request, AiResponse response)
    {
        var buffer = new MemoryStream(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("timestamp", response.Timestamp);
            w.WriteString("requestId", response.RequestId);
            w.WriteString("workflow", request.Workflow);
            w.WriteString("contingencySource", response.ContingencySource);
            w.WriteString("failoverReason", response.FailoverReason);
            w.WriteString("endpoint", response.Endpoint);
            w.WriteString("model", response.Model);
            w.WriteNumber("latencyMs", Math.Round(response.LatencyMs, 3));
            RequestLog.WriteContent(w, request, response.Text);
            w.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return RequestLog.AppendAsync(path, buffer.ToArray()).GetAwaiter().GetResult();
    }

    /// <summary>
    /// Reads the log back, oldest first. A damaged line (not JSON, a field of the wrong type, too long) is skipped and
    /// reported to <paramref name="onProblem"/> with its line number; the others are read. Throws
    /// <see cref="InvalidDataException"/> when <paramref name="path"/> is not a regular file.
    /// </summary>
    public static IEnumerable<ContingencyLogEntry> Read(string path, DateTimeOffset? since = null, IReadOnlyList<string>? workflows = null, Action<JsonLineProblem>? onProblem = null)
    {
        foreach (var entry in JsonLines.Read(path, Parse, onProblem))
        {
            if (since is { } s && entry.Timestamp < s)
            {
                continue;
            }

            if (workflows is { Count: > 0 } && !workflows.Any(w => new ContingencyEntry { Workflow = w }.Matches(entry.Workflow)))
            {
                continue;
            }

            yield return entry;
        }
    }

    private static ContingencyLogEntry Parse(JsonElement r)
    {
        if (r.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"the line is a JSON {r.ValueKind.ToString().ToLowerInvariant()}, not an object");
        }

        string? S(string name) => r.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Null => null,
            _ => throw new InvalidDataException($"the field '{name}' is a {v.ValueKind.ToString().ToLowerInvariant()}, not a string"),
        } : null;

        var messages = new List<ChatMessage>();
        if (r.TryGetProperty("messages", out var ms) && ms.ValueKind != JsonValueKind.Null)
        {
            if (ms.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidDataException("the field 'messages' is not an array");
            }

            var i = 0;
            foreach (var m in ms.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
                    || !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                {
                    throw new InvalidDataException($"messages[{i}] is not an object with a string role and content");
                }

                messages.Add(new ChatMessage(role.GetString()!, content.GetString()!));
                i++;
            }
        }

        if (!r.TryGetProperty("timestamp", out var ts) || ts.ValueKind != JsonValueKind.String || !ts.TryGetDateTimeOffset(out var timestamp))
        {
            throw new InvalidDataException("the field 'timestamp' is missing or not a date");
        }

        return new ContingencyLogEntry
        {
            Timestamp = timestamp,
            RequestId = S("requestId") ?? "",
            Workflow = S("workflow"),
            ContingencySource = S("contingencySource"),
            FailoverReason = S("failoverReason"),
            Endpoint = S("endpoint"),
            Model = S("model"),
            LatencyMs = r.TryGetProperty("latencyMs", out var l) && l.ValueKind == JsonValueKind.Number ? l.GetDouble() : 0,
            SystemPrompt = S("systemPrompt"),
            Messages = new(messages),
            Output = S("output") ?? "",
        };
    }
}
