using System.Management.Automation;
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
        // The machine-wide marker first (a drill run by any administrator), then this user's; with no marker (or a
        // damaged one), the block is still looked for by its fixed name on every firewall of the platform.
        var path = DrillMarkerPaths.FindExisting() ?? DrillMarkerPaths.Machine;
        var marker = DrillMarker.Read(path);
        var exists = File.Exists(path);
        var what = marker is not null
            ? $"the {marker.Method}{(marker.Firewall is { } f ? " (" + f + ")" : "")} block of {marker.CloudEndpoint} by {marker.Describe()}"
            : exists ? "the block of a damaged drill marker (" + path + "), found by its name" : "any failover drill block, found by its name";
        if (!ShouldProcess(what, "Remove the failover drill block"))
        {
            return;
        }

        try
        {
            var result = RunAsync(ct => DrillCleanup.RemoveLeftoverAsync(path, ProcessCommandRunner.Default, FailoverEngine.Shared.HttpPool, ct, sweepFirewall: true));
            if (!result.Found)
            {
                this.Narrate($"No active drill block (no marker at {string.Join(" or ", DrillMarkerPaths.Candidates)}, and no block found by its name); nothing to do.");
            }
            else if (result.Owner is { } owner)
            {
                this.Narrate($"The block belonged to {owner}.");
            }

            WriteObject(result);
            if (result.Found && !result.Removed)
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
