using System.Text.Json;
using System.Text.Json.Serialization;
using OllamaContinuity.Contingency;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Alerts;

/// <summary>The payload shape of the webhook POST.</summary>
public enum AlertFormat
{
    /// <summary>A flat JSON object (kind, severity, title, message, timestamp, host, endpoint, reason, until, workflow).</summary>
    Generic,
    /// <summary>A Microsoft Teams incoming-webhook / Workflows message with an Adaptive Card.</summary>
    Teams,
    /// <summary>A Slack incoming-webhook message (text and blocks).</summary>
    Slack,
}

/// <summary>Where alerts go. The webhook URL is a secret: it is never printed (see <see cref="Display"/>).</summary>
public sealed record AlertSettings
{
    /// <summary>The webhook URL (a secret). Null: no webhook.</summary>
    public Uri? WebhookUri { get; init; }

    /// <summary>The default value is <see cref="AlertFormat.Generic"/>.</summary>
    public AlertFormat Format { get; init; } = AlertFormat.Generic;

    /// <summary>Also write each alert to the system log (syslog/journald, the Windows Application log). The default value is true.</summary>
    public bool SystemLog { get; init; } = true;

    /// <summary>The shortest gap between two alerts of the same kind that are not tied to an outage's start and end. The default value is 15 minutes.</summary>
    public TimeSpan RepeatInterval { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>How long one webhook POST may take. The default value is 10 seconds.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where the settings came from: Environment, Process, User, Machine or Default.</summary>
    [JsonIgnore]
    public string Source { get; init; } = "Default";

    /// <summary>The webhook as it may be shown: scheme://host/*** .</summary>
    [JsonIgnore]
    public string? Display => WebhookUri is null ? null : Redact.SecretUrl(WebhookUri);
}

/// <summary>What Set-/Get-AiContinuityAlert write: the settings of a scope, with the webhook redacted.</summary>
public sealed class AlertConfiguration
{
    public required string Scope { get; init; }
    /// <summary>scheme://host/*** ; never the full URL.</summary>
    public string? Webhook { get; init; }
    public AlertFormat Format { get; init; }
    public bool SystemLog { get; init; }
    /// <summary>True for the settings that apply to this session (the first of Environment, Process, User, Machine).</summary>
    public bool Effective { get; init; }
    public bool Changed { get; init; }
    public string? Path { get; init; }
}

/// <summary>An alerts.json that cannot be used: the message names the file and, when known, the field (never the webhook URL).</summary>
public sealed class AlertSettingsException : IOException
{
    public AlertSettingsException(string path, string? field, string message, Exception? inner = null)
        : base(message, inner)
    {
        Path = path;
        Field = field;
    }

    public string Path { get; }

    public string? Field { get; }
}

/// <summary>Something wrong with the alert settings: a damaged file (<see cref="Damaged"/>) or an invalid environment variable.</summary>
/// <param name="Source">Environment, User or Machine.</param>
/// <param name="Path">The file, or the variable's name.</param>
public sealed record AlertSettingsProblem(string Source, string Path, string Message, bool Damaged);

/// <summary>The settings that apply, and every problem met on the way to them.</summary>
public sealed record AlertSettingsResolution(AlertSettings? Settings, IReadOnlyList<AlertSettingsProblem> Problems)
{
    /// <summary>One sentence for a warning, or null when there is no problem.</summary>
    public string? Summary => Problems.Count == 0 ? null : string.Join(" ", Problems.Select(p => p.Message));
}

/// <summary>
/// Alert settings per scope: Process (memory), User and Machine (<c>alerts.json</c>, owner-only because the webhook
/// URL is a secret), and the environment (<c>OLLAMACONTINUITY_ALERT_WEBHOOK</c>, <c>OLLAMACONTINUITY_ALERT_FORMAT</c>),
/// which wins. The first scope that has settings applies: Environment, Process, User, Machine. A damaged file or
/// an invalid variable is never taken for "nothing configured": <see cref="Resolve"/> reports it, and the cmdlets,
/// the requests that raise an alert and the drill say so.
/// </summary>
public sealed class AlertSettingsStore
{
    public const string WebhookVariable = "OLLAMACONTINUITY_ALERT_WEBHOOK";
    public const string FormatVariable = "OLLAMACONTINUITY_ALERT_FORMAT";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    private static readonly HashSet<string> Fields = new(StringComparer.Ordinal) { "webhookUri", "format", "systemLog", "repeatInterval", "timeout" };

    private readonly Func<ContinuityScope, string> _pathOf;
    private AlertSettings? _process;

    public AlertSettingsStore(Func<ContinuityScope, string>? pathOf = null) => _pathOf = pathOf ?? StatePaths.AlertFile;

    public static AlertSettingsStore Default { get; } = new();

    /// <summary>The settings of one scope, or null when it has none (no file, or an empty one: cleared). Throws <see cref="AlertSettingsException"/> when its file is damaged.</summary>
    public AlertSettings? Get(ContinuityScope scope)
    {
        if (scope == ContinuityScope.Process)
        {
            return _process;
        }

        var path = _pathOf(scope);
        byte[]? bytes;
        try
        {
            bytes = StateFile.Read(path);
        }
        catch (InvalidDataException e)
        {
            throw new AlertSettingsException(path, null, $"The alert settings file {path} cannot be used: {e.Message}", e);
        }

        return bytes is null || bytes.Length == 0 ? null : Parse(bytes, path) with { Source = scope.ToString() };
    }

    /// <summary>The settings that apply now: Environment, then Process, User, Machine; null when none is configured.</summary>
    public AlertSettings? Effective() => Resolve().Settings;

    /// <summary>The settings that apply now, with the problems met on the way (a damaged file before the one that applies, an invalid variable).</summary>
    public AlertSettingsResolution Resolve()
    {
        var problems = new List<AlertSettingsProblem>();
        if (Environment.GetEnvironmentVariable(WebhookVariable) is { } env && env.Trim().Length > 0)
        {
            if (Uri.TryCreate(env.Trim(), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp))
            {
                var formatText = Environment.GetEnvironmentVariable(FormatVariable)?.Trim();
                var format = AlertFormat.Generic;
                if (!string.IsNullOrEmpty(formatText) && !(Enum.TryParse(formatText, true, out format) && Enum.IsDefined(format)))
                {
                    format = AlertFormat.Generic;
                    problems.Add(new AlertSettingsProblem("Environment", FormatVariable,
                        $"{FormatVariable} ('{formatText}') is not Generic, Teams or Slack; the Generic format is used.", false));
                }

                return new AlertSettingsResolution(new AlertSettings { WebhookUri = uri, Format = format, Source = "Environment" }, problems);
            }

            // Never the value: it is a secret.
            problems.Add(new AlertSettingsProblem("Environment", WebhookVariable,
                $"{WebhookVariable} is set but is not an absolute http:// or https:// URL, so it is ignored (the value is not shown: it is a secret).", false));
        }

        foreach (var scope in new[] { ContinuityScope.Process, ContinuityScope.User, ContinuityScope.Machine })
        {
            try
            {
                if (Get(scope) is { } s)
                {
                    return new AlertSettingsResolution(s, problems);
                }
            }
            catch (AlertSettingsException e)
            {
                problems.Add(new AlertSettingsProblem(scope.ToString(), e.Path, e.Message, true));
            }
            catch (UnauthorizedAccessException) when (scope == ContinuityScope.Machine)
            {
                // The machine file is owner-only (root's): another account's settings are not ours to use.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                var path = _pathOf(scope);
                problems.Add(new AlertSettingsProblem(scope.ToString(), path, $"The alert settings file {path} cannot be read: {e.Message}", true));
            }
        }

        return new AlertSettingsResolution(null, problems);
    }

    /// <summary>The settings that apply now; throws <see cref="InvalidDataException"/> with every problem when there is one (the drill's alert check).</summary>
    public AlertSettings? EffectiveOrThrow()
    {
        var r = Resolve();
        return r.Summary is { } problem ? throw new InvalidDataException(problem) : r.Settings;
    }

    /// <summary>
    /// Stores <paramref name="settings"/> for a scope (null clears it). Returns whether anything changed. Refuses
    /// (<see cref="AlertSettingsException"/>) to replace a damaged file with new settings: clear it first.
    /// </summary>
    public bool Set(ContinuityScope scope, AlertSettings? settings)
    {
        if (scope == ContinuityScope.Process)
        {
            var changed = !Equals(_process, settings is null ? null : settings with { Source = "Process" });
            _process = settings is null ? null : settings with { Source = "Process" };
            return changed;
        }

        var path = _pathOf(scope);
        return StateFile.Update(path, worldReadable: false, bytes =>
        {
            if (settings is not null && bytes is { Length: > 0 })
            {
                _ = Parse(bytes, path);
            }

            var next = settings is null ? [] : JsonSerializer.SerializeToUtf8Bytes(settings, Json);
            var same = bytes is not null && bytes.AsSpan().SequenceEqual(next);
            return (same ? null : next, !same);
        });
    }

    public string? PathOf(ContinuityScope scope) => scope == ContinuityScope.Process ? null : _pathOf(scope);

    /// <summary>Reads and checks a whole alerts.json; the webhook URL never appears in an error.</summary>
    internal static AlertSettings Parse(byte[] bytes, string path)
    {
        AlertSettingsException Damaged(string? field, string what, Exception? inner = null) =>
            new(path, field, $"The alert settings file {path} is damaged: {what}. Fix it, or run Set-AiContinuityAlert -Clear and set it again.", inner);

        var json = StateFile.JsonUtf8(bytes);
        if (json.Span.Trim(" \t\r\n"u8).IsEmpty)
        {
            throw Damaged(null, "it holds only white space");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            // JsonException's message quotes at most a character or two of the text, never a whole value.
            throw Damaged(null, $"it is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", e);
        }

        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object)
            {
                throw Damaged(null, $"it holds a JSON {r.ValueKind.ToString().ToLowerInvariant()}, not an object");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in r.EnumerateObject())
            {
                if (!Fields.Contains(p.Name))
                {
                    throw Damaged(p.Name, $"the field '{p.Name}' is not an alert setting (expected {string.Join(", ", Fields)}; names are case-sensitive)");
                }

                if (!seen.Add(p.Name))
                {
                    throw Damaged(p.Name, $"the field '{p.Name}' appears twice");
                }
            }

            Uri? webhook = null;
            if (r.TryGetProperty("webhookUri", out var w) && w.ValueKind != JsonValueKind.Null)
            {
                if (w.ValueKind != JsonValueKind.String || !Uri.TryCreate(w.GetString()!.Trim(), UriKind.Absolute, out webhook)
                    || (webhook.Scheme != Uri.UriSchemeHttps && webhook.Scheme != Uri.UriSchemeHttp))
                {
                    throw Damaged("webhookUri", "the field 'webhookUri' is not an absolute http:// or https:// URL (the value is not shown: it is a secret)");
                }
            }

            var format = AlertFormat.Generic;
            if (r.TryGetProperty("format", out var f) && (f.ValueKind != JsonValueKind.String || !Enum.TryParse(f.GetString(), true, out format) || !Enum.IsDefined(format)))
            {
                throw Damaged("format", "the field 'format' is not Generic, Teams or Slack");
            }

            var systemLog = true;
            if (r.TryGetProperty("systemLog", out var sl))
            {
                systemLog = sl.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw Damaged("systemLog", "the field 'systemLog' is not true or false"),
                };
            }

            TimeSpan Span(string name, TimeSpan fallback)
            {
                if (!r.TryGetProperty(name, out var v))
                {
                    return fallback;
                }

                return v.ValueKind == JsonValueKind.String && TimeSpan.TryParse(v.GetString(), System.Globalization.CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero
                    ? t
                    : throw Damaged(name, $"the field '{name}' is not a positive time span such as \"00:15:00\"");
            }

            var defaults = new AlertSettings();
            return new AlertSettings
            {
                WebhookUri = webhook,
                Format = format,
                SystemLog = systemLog,
                RepeatInterval = Span("repeatInterval", defaults.RepeatInterval),
                Timeout = Span("timeout", defaults.Timeout),
            };
        }
    }
}
