using System.Management.Automation;
using OllamaContinuity.Internal;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Shows the alert settings (webhook redacted) or, with -Delivery, the alerts this session sent.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "AiContinuityAlert", DefaultParameterSetName = SettingsSet)]
[OutputType("OllamaContinuity.Alerts.AlertConfiguration", "OllamaContinuity.Alerts.AlertDelivery")]
public sealed class GetAiContinuityAlertCommand : PSCmdlet
{
    private const string SettingsSet = "Settings";
    private const string DeliverySet = "Delivery";

    [Parameter(ParameterSetName = SettingsSet)]
    [ValidateSet("Environment", "Process", "User", "Machine")]
    public string[]? Scope { get; set; }

    /// <summary>The delivery record of the user's processes: every alert, channel, target (redacted) and result.</summary>
    [Parameter(Mandatory = true, ParameterSetName = DeliverySet)]
    public SwitchParameter Delivery { get; set; }

    [Parameter(ParameterSetName = DeliverySet)]
    public DateTime Since { get; set; }

    protected override void EndProcessing() => Run();

    private void Run()
    {
        if (Delivery.IsPresent)
        {
            DateTimeOffset? since = MyInvocation.BoundParameters.ContainsKey(nameof(Since))
                ? new DateTimeOffset(Since.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(Since, DateTimeKind.Local) : Since)
                : null;
            try
            {
                foreach (var d in AlertDispatcher.ReadRecord(StatePaths.AlertDeliveryLog, since, problem => this.Warn(problem.ToString())))
                {
                    WriteObject(d);
                }
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                ThrowTerminatingError(new ErrorRecord(e, "AlertDeliveryLogUnreadable", ErrorCategory.ReadError, StatePaths.AlertDeliveryLog)
                {
                    ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Move the file aside; the next alert starts a new one." },
                });
            }

            return;
        }

        var store = AlertSettingsStore.Default;
        var resolution = store.Resolve();
        foreach (var p in resolution.Problems)
        {
            if (p.Damaged)
            {
                WriteError(AlertCmdlets.Damaged(new AlertSettingsException(p.Path, null, p.Message), p.Path));
            }
            else
            {
                this.Warn(p.Message);
            }
        }

        if (Scope is null)
        {
            var effective = AlertCmdlets.Describe(store, null, false, resolution);
            if (effective.Scope == "None")
            {
                if (!resolution.Problems.Any(p => p.Damaged))
                {
                    this.Warn($"No alert destination is configured: run Set-AiContinuityAlert -WebhookUri ... or set {AlertSettingsStore.WebhookVariable}.");
                }

                return;
            }

            WriteObject(effective);
            return;
        }

        foreach (var name in Scope)
        {
            if (name == "Environment")
            {
                WriteObject(AlertCmdlets.Describe(store, null, false, resolution));
                continue;
            }

            var scope = ContingencyCmdlets.ParseScope(name);
            try
            {
                WriteObject(AlertCmdlets.Describe(store, scope, false, resolution));
            }
            catch (AlertSettingsException e)
            {
                if (!resolution.Problems.Any(p => p.Path == e.Path))
                {
                    WriteError(AlertCmdlets.Damaged(e, e.Path));
                }
            }
        }
    }
}
