using OllamaContinuity.Failover;

namespace OllamaContinuity.Contingency;

/// <summary>Where a persisted setting lives: this process only, the current user, or every user of the machine.</summary>
public enum ContinuityScope
{
    /// <summary>In memory, this process only (gone when the session ends).</summary>
    Process,
    /// <summary>The current user's state directory: scheduled tasks running as the same account see it.</summary>
    User,
    /// <summary>The machine-wide state directory (needs root or an administrator to change).</summary>
    Machine,
}

/// <summary>
/// The directories of the persisted state. User: <see cref="RequestLog.StateDirectory"/> (Linux
/// <c>$XDG_STATE_HOME/OllamaContinuity</c>, default <c>~/.local/state/OllamaContinuity</c>; Windows
/// <c>%LOCALAPPDATA%\OllamaContinuity</c>; macOS <c>~/Library/Logs/OllamaContinuity</c>). Machine: Linux
/// <c>/var/lib/OllamaContinuity</c>, Windows <c>%ProgramData%\OllamaContinuity</c>, macOS
/// <c>/Library/Application Support/OllamaContinuity</c>. When <c>OLLAMACONTINUITY_STATE_DIR</c> is set, User is
/// <c>$OLLAMACONTINUITY_STATE_DIR/User</c> and Machine is <c>$OLLAMACONTINUITY_STATE_DIR/Machine</c>.
/// </summary>
public static class StatePaths
{
    public const string DirectoryVariable = "OLLAMACONTINUITY_STATE_DIR";

    public static string Directory(ContinuityScope scope)
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } root)
        {
            return Path.Combine(Path.GetFullPath(root), scope == ContinuityScope.Machine ? "Machine" : "User");
        }

        if (scope != ContinuityScope.Machine)
        {
            return RequestLog.StateDirectory();
        }

        if (OperatingSystem.IsWindows())
        {
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "OllamaContinuity");
        }

        return OperatingSystem.IsMacOS() ? "/Library/Application Support/OllamaContinuity" : "/var/lib/OllamaContinuity";
    }

    /// <summary>The contingency state file of a persisted scope.</summary>
    public static string ContingencyFile(ContinuityScope scope) => Path.Combine(Directory(scope), "contingency.json");

    /// <summary>The contingency log (prompt and output of everything served locally under contingency), per user.</summary>
    public static string ContingencyLog => Path.Combine(Directory(ContinuityScope.User), "contingency-log.jsonl");

    /// <summary>The alert configuration of a persisted scope (owner-only: the webhook URL is a secret).</summary>
    public static string AlertFile(ContinuityScope scope) => Path.Combine(Directory(scope), "alerts.json");

    /// <summary>The alert delivery record (which alert went where, and whether it arrived), per user.</summary>
    public static string AlertDeliveryLog => Path.Combine(Directory(ContinuityScope.User), "alert-deliveries.jsonl");

    /// <summary>The outages the user's processes have already alerted on (the cross-process rate limit).</summary>
    public static string AlertStateFile => Path.Combine(Directory(ContinuityScope.User), "alert-state.json");

    /// <summary>The marker of an active drill block, per user.</summary>
    public static string DrillMarker => Path.Combine(Directory(ContinuityScope.User), "drill-block.json");
}
