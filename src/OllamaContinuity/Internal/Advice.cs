namespace OllamaContinuity.Internal;

/// <summary>
/// The words of an error's RecommendedAction that depend on the operating system: the commands named must exist
/// where the error is shown (Test-NetConnection is Windows-only; sudo is not a Windows command).
/// </summary>
public static class Advice
{
    /// <summary>How to get an elevated session on this system.</summary>
    public static string Elevate =>
        OperatingSystem.IsWindows() ? "Run from an elevated session (Run as administrator)" : "Run from a PowerShell session started as root (sudo pwsh)";

    /// <summary>How to check from this system that a server answers.</summary>
    public static string CheckReachable =>
        OperatingSystem.IsWindows()
            ? "Test-NetConnection <host> -Port 11434, Invoke-RestMethod http://<ollama>:11434/api/version"
            : "curl -sS http://<ollama>:11434/api/version, or Invoke-RestMethod http://<ollama>:11434/api/version";
}
