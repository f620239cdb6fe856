using System.Management.Automation;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Stops the local failover gateway started by Start-AiGateway (only that process: PID and start time must match).</para>
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "AiGateway", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class StopAiGatewayCommand : PSCmdlet
{
    protected override void EndProcessing()
    {
        var (found, running, what) = Bridge.Describe();
        if (!found)
        {
            this.Narrate("No gateway is recorded for this user; nothing to stop.");
            return;
        }

        if (!ShouldProcess(what, running ? "Stop the AI failover gateway" : "Remove the stale gateway state file"))
        {
            return;
        }

        try
        {
            if (Bridge.Stop())
            {
                this.Narrate("Stopped " + what + ".");
            }
            else
            {
                this.Narrate("The gateway was not running; its state file is removed.");
            }
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or UnauthorizedAccessException or ArgumentException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "GatewayStopFailed", ErrorCategory.CloseError, what));
        }
    }

    private static class Bridge
    {
        public static (bool Found, bool Running, string What) Describe()
        {
            var s = OllamaContinuity.Gateway.GatewayControl.Read();
            return s is null ? (false, false, "") : (true, s.Running, $"the gateway at {s.Url} (PID {s.ProcessId})");
        }

        public static bool Stop() => OllamaContinuity.Gateway.GatewayControl.Stop(TimeSpan.FromSeconds(10));
    }
}
