using System.Management.Automation;

namespace OllamaContinuity.Internal;

/// <summary>
/// Verbose and warning lines that never prompt. A compiled cmdlet run with -Debug (and without -Verbose) has its
/// verbose and warning preferences turned into Inquire by the engine (a Windows PowerShell legacy that PowerShell 7
/// kept for compiled cmdlets), so every line would stop at an empty confirmation prompt, and throw under
/// -NonInteractive. Under -Debug those lines go to the debug stream instead, which -Debug shows.
/// </summary>
internal static class CmdletStreams
{
    /// <summary>Writes a -Verbose narrative line (or a debug line under -Debug alone).</summary>
    public static void Narrate(this PSCmdlet cmdlet, string message)
    {
        if (DebugWithoutVerbose(cmdlet))
        {
            cmdlet.WriteDebug("VERBOSE: " + message);
        }
        else
        {
            cmdlet.WriteVerbose(message);
        }
    }

    /// <summary>
    /// Writes a warning; under -Debug (where a warning would prompt, with or without -Verbose) it becomes a "WARNING:"
    /// debug line, unless -WarningAction was given, which the engine then honours without a prompt.
    /// </summary>
    public static void Warn(this PSCmdlet cmdlet, string message)
    {
        if (DebugGiven(cmdlet) && !cmdlet.MyInvocation.BoundParameters.ContainsKey("WarningAction"))
        {
            cmdlet.WriteDebug("WARNING: " + message);
            return;
        }

        cmdlet.WriteWarning(message);
    }

    private static bool DebugWithoutVerbose(PSCmdlet cmdlet) => DebugGiven(cmdlet) && !cmdlet.MyInvocation.BoundParameters.ContainsKey("Verbose");

    private static bool DebugGiven(PSCmdlet cmdlet) =>
        cmdlet.MyInvocation.BoundParameters.TryGetValue("Debug", out var debug) && debug is SwitchParameter { IsPresent: true };
}
