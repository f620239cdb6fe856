using System.Management.Automation;
using OllamaContinuity.Internal;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Turns manual contingency mode off: the matching workflows go back to the cloud first.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Disable, "AiContingency", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Contingency.ContingencyStatus")]
public sealed class DisableAiContingencyCommand : PSCmdlet
{
    /// <summary>The workflows (as given to Enable-AiContingency); omitted: every manual contingency of the scope.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string[]? Workflow { get; set; }

    [Parameter]
    [ValidateSet("Process", "User", "Machine")]
    public string Scope { get; set; } = "User";

    private readonly List<string> _workflows = [];

    protected override void ProcessRecord()
    {
        if (Workflow is not null)
        {
            // From Get-AiContingency: '*' is the entry for every workflow (and only that entry).
            _workflows.AddRange(Workflow);
        }
    }

    protected override void EndProcessing() => Run();

    private void Run()
    {
        var scope = ContingencyCmdlets.ParseScope(Scope);
        var service = ContingencyService.Default;
        _ = FailoverEngine.Shared;
        var all = _workflows.Count == 0;
        var what = all ? "every manual contingency" : "contingency for workflow " + string.Join(", ", _workflows);
        if (!ShouldProcess($"{what} in the {scope} scope{(service.PathOf(scope) is { } p ? " (" + p + ")" : "")}", "Disable contingency (the cloud is tried first again)"))
        {
            return;
        }

        try
        {
            foreach (var status in service.Disable(scope, all ? null : _workflows))
            {
                if (!status.Changed)
                {
                    this.Narrate($"No manual contingency for '{status.Workflow}' in the {scope} scope; nothing changed.");
                }

                WriteObject(status);
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or InvalidDataException)
        {
            ThrowTerminatingError(ContingencyCmdlets.StateError(e, scope, service.PathOf(scope)));
        }

        ContingencyCmdlets.WarnAboutAlerts(this);

        foreach (var w in all ? [] : _workflows.Where(x => x != "*"))
        {
            if (FailoverEngine.Shared.EvaluateContingency(w) is { Unreadable: null } still)
            {
                this.Warn($"Workflow '{w}' is still under contingency from the {still.Source} source ({still.Reason}). Run Get-AiContingency -Workflow '{w}' to see it.");
            }
        }
    }
}
