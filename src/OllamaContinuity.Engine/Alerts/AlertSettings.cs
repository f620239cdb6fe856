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

/// <summary>
/// Alert settings per scope: Process (memory), User and Machine (<c>alerts.json</c>, owner-only because the webhook
/// URL is a secret), and the environment (<c>OLLAMACONTINUITY_ALERT_WEBHOOK</c>, <c>OLLAMACONTINUITY_ALERT_FORMAT</c>),
/// which wins. The first scope that has settings applies: Environment, Process, User, Machine.
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

    private readonly Func<ContinuityScope, string> _pathOf;
    private AlertSettings? _process;

    public AlertSettingsStore(Func<ContinuityScope, string>? pathOf = null) => _pathOf = pathOf ?? StatePaths.AlertFile;

    public static AlertSettingsStore Default { get; } = new();

    /// <summary>The settings of one scope, or null when it has none.</summary>
    public AlertSettings? Get(ContinuityScope scope)
    {
        if (scope == ContinuityScope.Process)
        {
            return _process;
        }

        var bytes = StateFile.Read(_pathOf(scope));
        if (bytes is null || bytes.Length == 0)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<AlertSettings>(bytes, Json) is { } s ? s with { Source = scope.ToString() } : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The settings that apply now: Environment, then Process, User, Machine; null when none is configured.</summary>
    public AlertSettings? Effective()
    {
        if (Environment.GetEnvironmentVariable(WebhookVariable) is { Length: > 0 } env && Uri.TryCreate(env.Trim(), UriKind.Absolute, out var uri))
        {
            var format = Enum.TryParse<AlertFormat>(Environment.GetEnvironmentVariable(FormatVariable), true, out var f) ? f : AlertFormat.Generic;
            return new AlertSettings { WebhookUri = uri, Format = format, Source = "Environment" };
        }

        foreach (var scope in new[] { ContinuityScope.Process, ContinuityScope.User, ContinuityScope.Machine })
        {
            try
            {
                if (Get(scope) is { } s)
                {
                    return s;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // An unreadable machine file (another account's) is not ours to use.
            }
        }

        return null;
    }

    /// <summary>Stores <paramref name="settings"/> for a scope (null clears it). Returns whether anything changed.</summary>
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
            var next = settings is null ? [] : JsonSerializer.SerializeToUtf8Bytes(settings, Json);
            var same = bytes is not null && bytes.AsSpan().SequenceEqual(next);
            return (same ? null : next, !same);
        });
    }

    public string? PathOf(ContinuityScope scope) => scope == ContinuityScope.Process ? null : _pathOf(scope);
}
