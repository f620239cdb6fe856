using System.Management.Automation;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Internal;
using OllamaContinuity.Native;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Removes a failover drill's block that was left behind (a crashed or killed drill), using the drill's marker file.</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "FailoverDrill", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType("OllamaContinuity.Drill.DrillCleanupResult")]
public sealed class StopFailoverDrillCommand : AsyncCmdlet
{
    protected override void EndProcessing() => Run();

    private void Run()
    {
        var path = StatePaths.DrillMarker;
        var marker = DrillMarker.Read(path);
        if (marker is null && !File.Exists(path))
        {
            this.Narrate($"No active drill block (no marker at {path}); nothing to do.");
            WriteObject(new DrillCleanupResult { Detail = "no active drill block" });
            return;
        }

        var what = marker is null ? "an unreadable drill marker" : $"the {marker.Method}{(marker.Firewall is { } f ? " (" + f + ")" : "")} block of {marker.CloudEndpoint} by drill {marker.DrillId}, started {marker.StartedAt:u}";
        if (!ShouldProcess(what, "Remove the failover drill block"))
        {
            return;
        }

        try
        {
            var result = RunAsync(ct => DrillCleanup.RemoveLeftoverAsync(path, ProcessCommandRunner.Default, FailoverEngine.Shared.HttpPool, ct));
            WriteObject(result);
            if (!result.Removed)
            {
                WriteError(new ErrorRecord(new InvalidOperationException(result.Detail), "DrillBlockNotRemoved", ErrorCategory.PermissionDenied, path)
                {
                    ErrorDetails = new ErrorDetails(result.Detail) { RecommendedAction = Advice.Elevate + " and run Stop-FailoverDrill again; the marker stays until the block is gone." },
                });
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "DrillMarkerAccess", ErrorCategory.PermissionDenied, path));
        }
    }
}
