using System.Runtime.CompilerServices;

namespace OllamaContinuity.PowerShellTests;

/// <summary>
/// Keeps the module's per-user state (contingency state and log, alert settings and records, drill marker) of every
/// test in this process out of the real user's state directory: a temp directory unless the runner set one.
/// </summary>
internal static class StateIsolation
{
    [ModuleInitializer]
    internal static void Initialize()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR")))
        {
            Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR",
                Path.Combine(Path.GetTempPath(), "oc-ps-state", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }
}
