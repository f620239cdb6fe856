using System.Net;
using OllamaContinuity.Native;

namespace OllamaContinuity.Firewall;

/// <summary>The firewall a rule set is applied to. <see cref="Auto"/> picks the one that is in charge on this host.</summary>
public enum FirewallBackendKind
{
    Auto,
    Ufw,
    Firewalld,
    Nftables,
    Iptables,
    WindowsFirewall,
    Pf,
}

/// <summary>The operating system the backend detection assumes (tests simulate Windows and macOS on Linux).</summary>
public enum FirewallPlatform
{
    Linux,
    Windows,
    MacOS,
}

/// <summary>What the admin asked for: TCP to <see cref="Port"/> from <see cref="AllowFrom"/> only (loopback always allowed).</summary>
public sealed record FirewallRequest(int Port, IReadOnlyList<IPNetwork> AllowFrom)
{
    /// <summary>Enable a firewall that is installed but inactive (ufw). The default value is false: never silently.</summary>
    public bool EnableFirewall { get; init; }
}

/// <summary>
/// Where the backends run their tools and keep their files. Production uses the defaults; tests point the runner
/// into a network namespace and the directories under a temporary directory.
/// </summary>
public sealed class FirewallEnvironment
{
    /// <summary>
    /// What the cmdlets use. Tests (xunit or Pester) replace it with one whose Runner records commands, so that no
    /// firewall tool runs on the test host.
    /// </summary>
    public static FirewallEnvironment Default { get; set; } = new();

    /// <summary>A copy to change one setting of (for example the runner) without touching this one.</summary>
    public FirewallEnvironment Clone() => (FirewallEnvironment)MemberwiseClone();

    /// <summary>Runs every native tool (and, on Windows, every NetSecurity cmdlet). The default value is <see cref="ProcessCommandRunner.Default"/>.</summary>
    public ICommandRunner Runner { get; set; } = ProcessCommandRunner.Default;

    /// <summary>The platform for auto-detection. The default value is the operating system this process runs on.</summary>
    public FirewallPlatform Platform { get; set; } =
        OperatingSystem.IsWindows() ? FirewallPlatform.Windows : OperatingSystem.IsMacOS() ? FirewallPlatform.MacOS : FirewallPlatform.Linux;

    /// <summary>Options put before every ufw command, such as <c>--rootdir=DIR</c> and <c>--datadir=DIR</c>. The default value is none.</summary>
    public IReadOnlyList<string> UfwOptions { get; set; } = [];

    /// <summary>ufw's root directory for reading user.rules (the same DIR as <c>--rootdir</c>). The default value is "/".</summary>
    public string UfwRoot { get; set; } = "/";

    /// <summary>Where the nftables backend writes its include file for boot; null writes none. The default value is "/etc/nftables.d".</summary>
    public string? NftablesIncludeDirectory { get; set; } = "/etc/nftables.d";

    /// <summary>The directory of pf anchor files. The default value is "/etc/pf.anchors".</summary>
    public string PfAnchorDirectory { get; set; } = "/etc/pf.anchors";

    /// <summary>The directory of the LaunchDaemon that loads the pf anchor at boot. The default value is "/Library/LaunchDaemons".</summary>
    public string LaunchDaemonDirectory { get; set; } = "/Library/LaunchDaemons";
}

/// <summary>One change in a plan, with the command that undoes it if a later change fails.</summary>
public sealed record FirewallStep(CommandInvocation Command, CommandInvocation? Undo = null)
{
    /// <summary>Further undo commands, run after <see cref="Undo"/> (rebuilding something deleted takes several).</summary>
    public IReadOnlyList<CommandInvocation> MoreUndo { get; init; } = [];

    /// <summary>
    /// Set when the command's standard input is the token printed by the previous command (<c>pfctl -E</c> prints
    /// "Token : N"); the placeholder <see cref="TokenPlaceholder"/> in the standard input is replaced with it.
    /// </summary>
    public bool NeedsPreviousToken { get; init; }

    public const string TokenPlaceholder = "<token from pfctl -E>";
}

/// <summary>What a backend found in force: the module's own rules, parsed from the backend's own state.</summary>
public class FirewallState
{
    /// <summary>True when the module's rules exist in the backend's configuration.</summary>
    public bool Present { get; init; }

    /// <summary>True when the rules are in force now (the firewall is running and the rules are loaded).</summary>
    public bool Active { get; init; }

    public IReadOnlyList<IPNetwork> AllowFrom { get; init; } = [];

    /// <summary>Things an admin must know (an inactive firewall, other rules that open the port...).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>The exact commands that converge the firewall to the request (empty when already converged).</summary>
public sealed class FirewallPlan
{
    public required FirewallBackendKind Backend { get; init; }
    public required int Port { get; init; }
    public required FirewallState Current { get; init; }
    public required IReadOnlyList<FirewallStep> Steps { get; init; }
    public IReadOnlyList<IPNetwork> DesiredAllowFrom { get; init; } = [];
    public bool IsRemoval { get; init; }
    public bool IsEmpty => Steps.Count == 0;
}

/// <summary>The module's firewall rule as a user sees it: the output of Get-, Set- and Remove-OllamaFirewallRule.</summary>
public sealed class FirewallRuleInfo
{
    public required FirewallBackendKind Backend { get; init; }
    public required int Port { get; init; }

    /// <summary>The sources allowed now, as CIDR strings (IPv4 first); in CSV "10.0.0.0/8; 192.168.1.0/24".</summary>
    public required ItemList<string> AllowFrom { get; init; }

    /// <summary>True when the module's rule is in force now.</summary>
    public required bool Active { get; init; }

    /// <summary>True when the module's rule exists in the backend's configuration.</summary>
    public required bool Present { get; init; }

    /// <summary>Where the state was read from (the backend's own state, never a cache of the module).</summary>
    public required string SourceOfTruth { get; init; }

    /// <summary>True when this run changed the firewall.</summary>
    public bool Changed { get; init; }

    /// <summary>The commands this run ran (for Get, none), in order.</summary>
    public ItemList<string> Commands { get; init; } = [];

    public ItemList<string> Warnings { get; init; } = [];
}

/// <summary>A rejected -AllowFrom value or port: raised before any process starts.</summary>
public sealed class FirewallInputException(string errorId, string message, string? value) : ArgumentException(message)
{
    /// <summary>A stable id: EmptyAllowFrom, InvalidAllowFrom, AllowFromHostBits, AllowFromEverywhere, AllowFromTooMany, InvalidPort.</summary>
    public string ErrorId { get; } = errorId;

    public string? Value { get; } = value;
}

/// <summary>The firewall auto-detection chose, and why (for -Verbose and the audit's detail).</summary>
public sealed record FirewallDetection(FirewallBackendKind Kind, string Reason);

/// <summary>No firewall to manage was found (or the named one is missing).</summary>
public sealed class FirewallBackendNotFoundException(string message) : InvalidOperationException(message);

/// <summary>A tool exited non-zero while applying a plan; what this run had changed was rolled back.</summary>
public sealed class FirewallCommandException(string message, CommandInvocation failed, CommandResult result, IReadOnlyList<string> ran, IReadOnlyList<string> rolledBack, IReadOnlyList<string> rollbackFailures)
    : InvalidOperationException(message)
{
    public CommandInvocation FailedCommand { get; } = failed;
    public CommandResult Result { get; } = result;

    /// <summary>The commands that ran before the failure (including the failing one).</summary>
    public IReadOnlyList<string> Ran { get; } = ran;

    /// <summary>The undo commands that ran, in order.</summary>
    public IReadOnlyList<string> RolledBack { get; } = rolledBack;

    /// <summary>Undo commands that failed too (the admin must check these by hand).</summary>
    public IReadOnlyList<string> RollbackFailures { get; } = rollbackFailures;
}
