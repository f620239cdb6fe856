using System.Management.Automation;
using System.Reflection;
using System.Text.RegularExpressions;
using OllamaContinuity.Native;

namespace OllamaContinuity.Internal;

/// <summary>
/// Sends cmdlet calls (an approved PowerShell verb, a dash and a capitalised noun, such as <c>Get-NetTCPConnection</c>)
/// to this PowerShell session through <see cref="FirewallCmdletSupport.PowerShellCmdletRunner"/>, and every native
/// program (journalctl, netstat.exe, manage-bde.exe, sc.exe, iptables-save...) to the process runner. For engine work
/// that mixes both, such as the local exposure audit.
/// </summary>
internal sealed partial class CmdletOrProcessCommandRunner(ICommandRunner session, ICommandRunner process) : ICommandRunner
{
    private static readonly HashSet<string> ApprovedVerbs = new[]
        {
            typeof(VerbsCommon), typeof(VerbsCommunications), typeof(VerbsData), typeof(VerbsDiagnostic),
            typeof(VerbsLifecycle), typeof(VerbsOther), typeof(VerbsSecurity),
        }
        .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static))
        .Select(f => f.GetValue(null) as string)
        .OfType<string>()
        .ToHashSet(StringComparer.Ordinal);

    public CmdletOrProcessCommandRunner(AsyncCmdlet cmdlet)
        : this(new FirewallCmdletSupport.PowerShellCmdletRunner(cmdlet), ProcessCommandRunner.Default)
    {
    }

    /// <summary>Whether <paramref name="fileName"/> names a cmdlet (Get-NetTCPConnection) rather than a program (manage-bde.exe, iptables-save).</summary>
    public static bool IsCmdletName(string fileName)
    {
        var m = CmdletName().Match(fileName);
        return m.Success && ApprovedVerbs.Contains(m.Groups[1].Value);
    }

    public Task<CommandResult> RunAsync(CommandInvocation command, CancellationToken cancellationToken = default) =>
        (IsCmdletName(command.FileName) ? session : process).RunAsync(command, cancellationToken);

    [GeneratedRegex("^([A-Z][a-z]+)-[A-Z][A-Za-z0-9]*$")]
    private static partial Regex CmdletName();
}
