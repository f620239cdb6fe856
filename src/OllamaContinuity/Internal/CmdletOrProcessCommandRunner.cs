using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Internal;

/// <summary>
/// Sends Verb-Noun cmdlet calls (such as <c>Get-NetTCPConnection</c>) to this PowerShell session through
/// <see cref="FirewallCmdletSupport.PowerShellCmdletRunner"/>, and every native program (journalctl, netstat.exe,
/// manage-bde.exe, sc.exe...) to the process runner. For engine work that mixes both, such as the local exposure audit.
/// </summary>
internal sealed partial class CmdletOrProcessCommandRunner(ICommandRunner session, ICommandRunner process) : ICommandRunner
{
    public CmdletOrProcessCommandRunner(AsyncCmdlet cmdlet)
        : this(new FirewallCmdletSupport.PowerShellCmdletRunner(cmdlet), ProcessCommandRunner.Default)
    {
    }

    /// <summary>Whether <paramref name="fileName"/> is a cmdlet name (Verb-Noun, no path, no extension).</summary>
    public static bool IsCmdletName(string fileName) => CmdletName().IsMatch(fileName);

    public Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default) =>
        (IsCmdletName(command.FileName) ? session : process).RunAsync(command, cancellationToken);

    [GeneratedRegex("^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")]
    private static partial Regex CmdletName();
}
