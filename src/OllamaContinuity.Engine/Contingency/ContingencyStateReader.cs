using System.Text.Json;

namespace OllamaContinuity.Contingency;

/// <summary>A contingency state file that cannot be read or is not a valid state document: the message names the file and, when known, the field.</summary>
public sealed class ContingencyStateException : IOException
{
    public ContingencyStateException(string path, string? field, string message, Exception? inner = null)
        : base(message, inner)
    {
        Path = path;
        Field = field;
    }

    /// <summary>The state file.</summary>
    public string Path { get; }

    /// <summary>The field that is wrong (<c>entries[2].until</c>), or null when the whole file is (not JSON, not a file, too large).</summary>
    public string? Field { get; }
}

/// <summary>The last good copy of a state file (<c>contingency.json.last-good</c>): what the file held when it was last read or written whole.</summary>
public sealed record ContingencyLastGood(string Path, DateTimeOffset SavedAt, IReadOnlyList<ContingencyEntry> Entries);

/// <summary>What one scope holds: its entries, or the problem with its file and the last good copy.</summary>
/// <param name="Path">The state file (null for Process).</param>
/// <param name="Entries">The stored entries, expired ones included (empty when <paramref name="Problem"/> is set).</param>
public sealed record ContingencyScopeState(ContinuityScope Scope, string? Path, IReadOnlyList<ContingencyEntry> Entries, ContingencyStateException? Problem, ContingencyLastGood? LastGood);

/// <summary>
/// Reads a contingency state document and checks all of it: the root is an object with <c>version</c> 1 and an
/// <c>entries</c> array; each entry is an object whose fields have their types (workflow: a non-empty string or
/// null; reason, enabledBy: string or null; since: a date; until: a date or null; requireApproval: true or false).
/// An unknown or repeated field is an error too: a misspelt <c>Until</c> silently ignored would never expire, and a
/// misspelt <c>requireApproval</c> would skip the approval. A UTF-8 or UTF-16 byte-order mark is accepted.
/// </summary>
internal static class ContingencyStateReader
{
    private static readonly HashSet<string> RootFields = new(StringComparer.Ordinal) { "version", "entries" };
    private static readonly HashSet<string> EntryFields = new(StringComparer.Ordinal) { "workflow", "reason", "since", "until", "requireApproval", "enabledBy" };

    public static ContingencyState Parse(byte[] bytes, string path)
    {
        var json = StateFile.JsonUtf8(bytes);
        if (json.Span.Trim(" \t\r\n"u8).IsEmpty)
        {
            throw Damaged(path, null, "it is empty (a state file always holds at least {\"version\":1,\"entries\":[]})");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Damaged(path, null, $"it is not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Damaged(path, null, $"it holds a JSON {Kind(root)}, not an object");
            }

            CheckFields(root, RootFields, path, "");
            if (!root.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out var v) || v != 1)
            {
                throw Damaged(path, "version", version.ValueKind == JsonValueKind.Undefined ? "the field 'version' is missing" : $"the field 'version' is {Show(version)}, not 1");
            }

            if (!root.TryGetProperty("entries", out var entries) || entries.ValueKind != JsonValueKind.Array)
            {
                throw Damaged(path, "entries", entries.ValueKind == JsonValueKind.Undefined ? "the field 'entries' is missing" : $"the field 'entries' is {Show(entries)}, not an array");
            }

            var state = new ContingencyState();
            var i = 0;
            foreach (var e in entries.EnumerateArray())
            {
                state.Entries.Add(Entry(e, path, $"entries[{i}]"));
                i++;
            }

            return state;
        }
    }

    private static ContingencyEntry Entry(JsonElement e, string path, string at)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw Damaged(path, at, $"{at} is {Show(e)}, not an object");
        }

        CheckFields(e, EntryFields, path, at + ".");
        var workflow = String(e, "workflow", path, at);
        if (workflow is { } w && string.IsNullOrWhiteSpace(w))
        {
            throw Damaged(path, at + ".workflow", $"{at}.workflow is an empty string (every workflow is null or '*')");
        }

        if (!e.TryGetProperty("since", out var since) || since.ValueKind != JsonValueKind.String || !since.TryGetDateTimeOffset(out var sinceValue))
        {
            throw Damaged(path, at + ".since", $"{at}.since is {(since.ValueKind == JsonValueKind.Undefined ? "missing" : Show(since))}, not a date");
        }

        DateTimeOffset? until = null;
        if (e.TryGetProperty("until", out var u) && u.ValueKind != JsonValueKind.Null)
        {
            until = u.ValueKind == JsonValueKind.String && u.TryGetDateTimeOffset(out var uv) ? uv
                : throw Damaged(path, at + ".until", $"{at}.until is {Show(u)}, not a date or null");
        }

        var approval = false;
        if (e.TryGetProperty("requireApproval", out var a))
        {
            approval = a.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Damaged(path, at + ".requireApproval", $"{at}.requireApproval is {Show(a)}, not true or false"),
            };
        }

        return new ContingencyEntry
        {
            Workflow = workflow is "*" ? null : workflow,
            Reason = String(e, "reason", path, at),
            Since = sinceValue,
            Until = until,
            RequireApproval = approval,
            EnabledBy = String(e, "enabledBy", path, at),
        };
    }

    private static string? String(JsonElement e, string name, string path, string at) =>
        !e.TryGetProperty(name, out var v) ? null : v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Null => null,
            _ => throw Damaged(path, $"{at}.{name}", $"{at}.{name} is {Show(v)}, not a string or null"),
        };

    private static void CheckFields(JsonElement o, HashSet<string> known, string path, string at)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in o.EnumerateObject())
        {
            if (!known.Contains(p.Name))
            {
                throw Damaged(path, at + p.Name, $"the field '{at}{p.Name}' is not a field of a contingency state (expected {string.Join(", ", known)}; names are case-sensitive)");
            }

            if (!seen.Add(p.Name))
            {
                throw Damaged(path, at + p.Name, $"the field '{at}{p.Name}' appears twice");
            }
        }
    }

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Show(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        JsonValueKind.Number => "the number " + (e.GetRawText() is { Length: <= 20 } n ? n : "(long)"),
        JsonValueKind.String => "the string '" + (e.GetString() is { Length: <= 40 } s ? s : e.GetString()![..40] + "...") + "'",
        _ => "a JSON " + Kind(e),
    };

    private static ContingencyStateException Damaged(string path, string? field, string what, Exception? inner = null) =>
        new(path, field, $"The contingency state file {path} is damaged: {what}.", inner);
}
