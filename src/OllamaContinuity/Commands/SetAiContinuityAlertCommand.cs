using System.Management.Automation;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Configures where continuity alerts go: a webhook (generic JSON, Microsoft Teams or Slack) and the system log.</para>
/// </summary>
[Cmdlet(VerbsCommon.Set, "AiContinuityAlert", DefaultParameterSetName = SetSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Alerts.AlertConfiguration")]
public sealed class SetAiContinuityAlertCommand : PSCmdlet
{
    private const string SetSet = "Set";
    private const string ClearSet = "Clear";

    /// <summary>The incoming-webhook URL. A secret: it is stored owner-only and never printed.</summary>
    [Parameter(Position = 0, ParameterSetName = SetSet)]
    [ValidateNotNullOrEmpty]
    public string? WebhookUri { get; set; }

    [Parameter(ParameterSetName = SetSet)]
    [ValidateSet("Generic", "Teams", "Slack")]
    public string Format { get; set; } = "Generic";

    /// <summary>Do not write alerts to the system log.</summary>
    [Parameter(ParameterSetName = SetSet)]
    public SwitchParameter NoSystemLog { get; set; }

    [Parameter(ParameterSetName = SetSet)]
    public TimeSpan RepeatInterval { get; set; }

    [Parameter]
    [ValidateSet("Process", "User", "Machine")]
    public string Scope { get; set; } = "User";

    /// <summary>Removes the alert settings of the scope.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ClearSet)]
    public SwitchParameter Clear { get; set; }

    protected override void EndProcessing() => Run();

    private void Run()
    {
        var scope = ContingencyCmdlets.ParseScope(Scope);
        var store = AlertSettingsStore.Default;
        AlertSettings? settings = null;
        if (ParameterSetName == SetSet)
        {
            Uri? uri = null;
            if (WebhookUri is not null && (!Uri.TryCreate(WebhookUri.Trim(), UriKind.Absolute, out uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)))
            {
                // Never echo the value: it is a secret.
                ThrowTerminatingError(new ErrorRecord(new ArgumentException("-WebhookUri is not an absolute http(s) URL."), "InvalidWebhookUri", ErrorCategory.InvalidArgument, null)
                {
                    ErrorDetails = new ErrorDetails("-WebhookUri is not an absolute http:// or https:// URL.") { RecommendedAction = "Copy the incoming-webhook URL from Teams (Workflows) or Slack exactly." },
                });
            }

            if (uri is { Scheme: "http" } && !uri.IsLoopback)
            {
                this.Warn("The webhook URL uses plain http: the secret in its path travels unencrypted. Use https.");
            }

            settings = new AlertSettings
            {
                WebhookUri = uri,
                Format = Enum.Parse<AlertFormat>(Format),
                SystemLog = !NoSystemLog.IsPresent,
                RepeatInterval = MyInvocation.BoundParameters.ContainsKey(nameof(RepeatInterval)) && RepeatInterval > TimeSpan.Zero ? RepeatInterval : TimeSpan.FromMinutes(15),
            };
        }

        var target = $"alert settings of the {scope} scope{(store.PathOf(scope) is { } p ? " (" + p + ")" : "")}";
        var action = settings is null ? "Remove the alert settings"
            : $"Send alerts to {(settings.Display is { } d ? "webhook " + d + " (" + settings.Format + ")" : "no webhook")}{(settings.SystemLog ? " and the system log" : "")}";
        if (!ShouldProcess(target, action))
        {
            return;
        }

        bool changed;
        try
        {
            changed = store.Set(scope, settings);
        }
        catch (AlertSettingsException e)
        {
            ThrowTerminatingError(AlertCmdlets.Damaged(e, e.Path));
            return;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or InvalidDataException)
        {
            ThrowTerminatingError(new ErrorRecord(new IOException(Redact.Scrub(e.Message, WebhookUri)), e is UnauthorizedAccessException ? "StateAccessDenied" : "StateFileBusy",
                e is UnauthorizedAccessException ? ErrorCategory.PermissionDenied : ErrorCategory.ResourceBusy, store.PathOf(scope))
            {
                ErrorDetails = new ErrorDetails($"Cannot write the {scope} alert settings.") { RecommendedAction = Advice.Elevate + " for -Scope Machine, or use -Scope User." },
            });
            return;
        }

        if (!changed)
        {
            this.Narrate("The alert settings were like that already; nothing changed.");
        }

        var resolution = store.Resolve();
        if (resolution.Summary is { } problem)
        {
            this.Warn("Alerts may still reach nobody: " + problem);
        }

        WriteObject(AlertCmdlets.Describe(store, scope, changed, resolution));
    }
}

internal static class AlertCmdlets
{
    /// <summary>The settings of <paramref name="scope"/> (null: the effective ones). Throws <see cref="AlertSettingsException"/> when the scope's file is damaged.</summary>
    public static AlertConfiguration Describe(AlertSettingsStore store, ContinuityScope? scope, bool changed, AlertSettingsResolution resolution)
    {
        var effective = resolution.Settings;
        var s = scope is { } sc ? store.Get(sc) : effective;
        var name = scope?.ToString() ?? effective?.Source ?? "None";
        return new AlertConfiguration
        {
            Scope = name,
            Webhook = s?.Display,
            Format = s?.Format ?? AlertFormat.Generic,
            SystemLog = s?.SystemLog ?? false,
            Effective = s is not null && effective?.Source == name,
            Changed = changed,
            Path = scope is { } x ? store.PathOf(x) : null,
        };
    }

    /// <summary>A damaged alerts.json (AlertSettingsDamaged): never taken for "nothing configured".</summary>
    public static ErrorRecord Damaged(Exception e, string path) =>
        new(e, "AlertSettingsDamaged", ErrorCategory.InvalidData, path)
        {
            ErrorDetails = new ErrorDetails(e.Message)
            {
                RecommendedAction = "Fix the JSON, or run Set-AiContinuityAlert -Clear -Scope <scope> and configure the alerts again. Until then outages may alert nobody.",
            },
        };
}
