using Xunit;

namespace OllamaContinuity.TestSupport;

/// <summary>Reasons a test cannot run here. Each one makes the test report as skipped, never as passed.</summary>
public static class Require
{
    public static bool IsRoot => Environment.UserName == "root" || (OperatingSystem.IsLinux() && File.Exists("/proc/self/status") &&
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))?.Split('\t', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(1) == "0");

    public static void Root() => Skip.IfNot(OperatingSystem.IsLinux() && IsRoot, "needs root on Linux (network namespaces and firewalls)");

    public static void Tool(string name) => Skip.If(Which(name) is null, $"'{name}' is not installed (.ci/run installs it with apt-get)");

    public static string? Which(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p))
            {
                return p;
            }
        }

        return null;
    }
}
