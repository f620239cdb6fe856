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
            foreach (var d in AlertDispatcher.ReadRecord(StatePaths.AlertDeliveryLog, since))
            {
                WriteObject(d);
            }

            return;
        }

        var store = AlertSettingsStore.Default;
        if (Scope is null)
        {
            var effective = AlertCmdlets.Describe(store, null, false);
            if (effective.Scope == "None")
            {
                this.Warn($"No alert destination is configured: run Set-AiContinuityAlert -WebhookUri ... or set {AlertSettingsStore.WebhookVariable}.");
                return;
            }

            WriteObject(effective);
            return;
        }

        foreach (var name in Scope)
        {
            WriteObject(name == "Environment" ? AlertCmdlets.Describe(store, null, false) : AlertCmdlets.Describe(store, ContingencyCmdlets.ParseScope(name), false));
        }
    }
}
