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
        OllamaContinuity.TestSupport.TestState.Isolate();
        OllamaContinuity.TestSupport.TestThreadPool.Raise();
    }
}
