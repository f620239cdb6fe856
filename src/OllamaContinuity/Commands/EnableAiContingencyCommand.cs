using System.Management.Automation;
using OllamaContinuity.Internal;
using OllamaContinuity.Contingency;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Turns contingency mode on: Invoke-AiRequest skips the cloud and serves the matching workflows from local Ollama.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Enable, "AiContingency", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Contingency.ContingencyStatus")]
public sealed class EnableAiContingencyCommand : PSCmdlet
{
    /// <summary>Workflow names or wildcard patterns; omitted: every workflow.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(WorkflowCompleter))]
    public string[]? Workflow { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Reason { get; set; }

    [Parameter]
    public TimeSpan Duration { get; set; }

    [Parameter]
    [ValidateSet("Process", "User", "Machine")]
    public string Scope { get; set; } = "User";

    [Parameter]
    public SwitchParameter RequireApproval { get; set; }

    private readonly List<string> _workflows = [];

    protected override void BeginProcessing()
    {
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Duration)) && Duration <= TimeSpan.Zero)
        {
            ThrowTerminatingError(new ErrorRecord(new ArgumentOutOfRangeException(nameof(Duration), "-Duration must be positive."), "InvalidDuration", ErrorCategory.InvalidArgument, Duration)
            {
                ErrorDetails = new ErrorDetails("-Duration must be positive.") { RecommendedAction = "Pass a positive time span, for example -Duration (New-TimeSpan -Hours 2) or -Duration 02:00:00." },
            });
        }
    }

    protected override void ProcessRecord()
    {
        if (Workflow is not null)
        {
            _workflows.AddRange(Workflow);
        }
    }

    protected override void EndProcessing() => ContingencyCmdlets.Enable(this, _workflows, Reason,
        MyInvocation.BoundParameters.ContainsKey(nameof(Duration)) ? Duration : null, Scope, RequireApproval.IsPresent);
}

/// <summary>The engine calls of the contingency cmdlets (kept out of the cmdlet classes' signatures).</summary>
internal static class ContingencyCmdlets
{
    public static ContinuityScope ParseScope(string scope) => Enum.Parse<ContinuityScope>(scope, ignoreCase: true);

    public static void Enable(PSCmdlet cmdlet, List<string> workflows, string? reason, TimeSpan? duration, string scopeName, bool requireApproval)
    {
        var scope = ParseScope(scopeName);
        var service = ContingencyService.Default;
        _ = FailoverEngine.Shared; // attach the session's engine first, so the change reaches the alerts
        var what = workflows.Count == 0 ? "every workflow" : "workflow " + string.Join(", ", workflows);
        var where = scope == ContinuityScope.Process ? "this session (Process scope)" : $"{scope} scope ({service.PathOf(scope)})";
        var action = $"Enable contingency (skip the cloud, serve from Ollama){(duration is { } d ? $" for {d}" : " until disabled")}{(requireApproval ? ", asking for approval" : "")}";
        if (!cmdlet.ShouldProcess($"{what} in {where}", action))
        {
            return;
        }

        try
        {
            foreach (var status in service.Enable(scope, workflows, reason, duration, requireApproval))
            {
                if (!status.Changed)
                {
                    cmdlet.Narrate($"Contingency for '{status.Workflow}' in the {scope} scope was already on with the same settings; nothing changed.");
                }

                cmdlet.WriteObject(status);
            }
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or InvalidDataException)
        {
            cmdlet.ThrowTerminatingError(StateError(e, scope, service.PathOf(scope)));
        }

        WarnAboutAlerts(cmdlet);
    }

    /// <summary>A change of contingency sends an alert: say so when the alert settings cannot be used.</summary>
    public static void WarnAboutAlerts(PSCmdlet cmdlet)
    {
        if (OllamaContinuity.Alerts.AlertSettingsStore.Default.Resolve().Summary is { } problem)
        {
            cmdlet.Warn("The alert for this change may reach nobody: " + problem);
        }
    }

    /// <summary>A contingency state that cannot be read (ContingencyStateUnreadable): never taken for "no contingency".</summary>
    public static ErrorRecord Unreadable(Exception e, string? path, object target) =>
        new(e, "ContingencyStateUnreadable", ErrorCategory.ReadError, target)
        {
            ErrorDetails = new ErrorDetails(e.Message)
            {
                RecommendedAction = $"Fix the JSON{(path is null ? "" : " of " + path)}, delete the file, or copy its .last-good file over it. Until then every request fails closed unless OLLAMACONTINUITY_UNREADABLE_STATE=Ollama.",
            },
        };

    public static ErrorRecord StateError(Exception e, ContinuityScope scope, string? path) => e switch
    {
        UnauthorizedAccessException => new ErrorRecord(e, "StateAccessDenied", ErrorCategory.PermissionDenied, path)
        {
            ErrorDetails = new ErrorDetails($"Cannot write the {scope} contingency state ({path}): access denied.")
            {
                RecommendedAction = scope == ContinuityScope.Machine ? Advice.Elevate + " for -Scope Machine, or use -Scope User." : "Check the permissions of the state directory, or set OLLAMACONTINUITY_STATE_DIR.",
            },
        },
        InvalidDataException or ContingencyStateException => new ErrorRecord(e, "StateFileDamaged", ErrorCategory.InvalidData, path)
        {
            ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Fix the JSON, delete the file (it holds only contingency entries), or copy its .last-good file over it, and run the command again." },
        },
        _ => new ErrorRecord(e, "StateFileBusy", ErrorCategory.ResourceBusy, path)
        {
            ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Another process is changing the contingency state; run the command again." },
        },
    };
}
