using System.Runtime.CompilerServices;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests;

internal static class AssemblySetup
{
    [ModuleInitializer]
    internal static void Initialize()
    {
        TestState.Isolate();
        TestThreadPool.Raise();
    }
}
