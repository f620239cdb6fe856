using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Text.Json;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Internal;

/// <summary>
/// Tab completion for <c>-Workflow</c>: the workflow names this user has used, from the contingency state (every
/// scope) and from the tail of the request log (<c>-LogPath</c> when typed, else OLLAMACONTINUITY_LOG_PATH, else
/// the default log). Nothing here sends a request; an unreadable file just completes nothing from it.
/// </summary>
public sealed class WorkflowCompleter : IArgumentCompleter
{
    /// <summary>How much of the end of the request log is read (the log grows without bound).</summary>
    private const int LogTailBytes = 512 * 1024;

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var (prefix, quote) = CompletionText.Unquote(wordToComplete);
        var names = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        // Patterns ('payroll-*') are names to Enable/Disable/Get-AiContingency, not a workflow to run.
        var patternsToo = commandName.EndsWith("AiContingency", StringComparison.OrdinalIgnoreCase);
        foreach (var name in FromContingencyState().Concat(FromRequestLog(LogPathOf(fakeBoundParameters))))
        {
            if (name.Length > 0 && name != "*" && (patternsToo || !WildcardPattern.ContainsWildcardCharacters(name)))
            {
                names.Add(name);
            }
        }

        return names.Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(CompletionText.Quote(n, quote), n, CompletionResultType.ParameterValue, n));
    }

    private static string? LogPathOf(IDictionary bound) =>
        bound is not null && bound.Contains("LogPath") && bound["LogPath"] is { } p ? (p is PSObject o ? o.BaseObject : p).ToString() : null;

    private static IEnumerable<string> FromContingencyState()
    {
        var names = new List<string>();
        foreach (var scope in Enum.GetValues<ContinuityScope>())
        {
            try
            {
                names.AddRange(ContingencyService.Default.List(scope).Select(s => s.Workflow));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or JsonException)
            {
                // A damaged or unreadable state file completes nothing; Get-AiContingency reports it.
            }
        }

        return names;
    }

    /// <summary>The workflow names in the last <see cref="LogTailBytes"/> of a request log (JSON lines).</summary>
    internal static IEnumerable<string> FromRequestLog(string? explicitPath)
    {
        var names = new List<string>();
        try
        {
            var path = RequestLog.ResolvePath(explicitPath);
            if (!File.Exists(path))
            {
                return names;
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var skipFirst = false;
            if (stream.Length > LogTailBytes)
            {
                stream.Seek(-LogTailBytes, SeekOrigin.End);
                skipFirst = true; // most likely a partial line
            }

            using var reader = new StreamReader(stream);
            for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
            {
                if (skipFirst)
                {
                    skipFirst = false;
                    continue;
                }

                if (line.Contains("\"workflow\":\"", StringComparison.Ordinal) && WorkflowOf(line) is { } name)
                {
                    names.Add(name);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
        }

        return names;
    }

    private static string? WorkflowOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("workflow", out var w) && w.ValueKind == JsonValueKind.String
                ? w.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null; // the log reader is tolerant: a torn or foreign line is skipped
        }
    }
}

/// <summary>Quoting for completion results: keep the user's quote, and quote names PowerShell would split.</summary>
internal static class CompletionText
{
    public static (string Prefix, char? Quote) Unquote(string? word)
    {
        word ??= "";
        if (word.Length > 0 && word[0] is '\'' or '"')
        {
            var q = word[0];
            var inner = word[1..];
            return (inner.EndsWith(q) ? inner[..^1] : inner, q);
        }

        return (word, null);
    }

    public static string Quote(string value, char? quote)
    {
        if (quote is null && value.IndexOfAny([' ', '\t', '\'', '"', '$', '`', ',', ';', '(', ')', '{', '}', '|', '&', '@', '#', '<', '>']) < 0)
        {
            return value;
        }

        return "'" + value.Replace("'", "''") + "'";
    }
}
