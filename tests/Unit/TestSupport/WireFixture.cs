using Xunit;

namespace OllamaContinuity.TestSupport;

/// <summary>
/// Real provider bytes (shared/wire-fixtures/README.md, kept beside the repository, not in it): the folder named by
/// <c>OLLAMACONTINUITY_WIRE_FIXTURES</c>, else the first <c>shared/wire-fixtures</c> found beside this assembly's folder
/// or one of its ancestors (a clone next to shared/, as on developer machines and CI). A test that needs one is skipped
/// when absent.
/// </summary>
public static class WireFixture
{
    public static string Directory { get; } =
        Environment.GetEnvironmentVariable("OLLAMACONTINUITY_WIRE_FIXTURES") is { Length: > 0 } d ? d : Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "wire-fixtures");
            if (System.IO.Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return System.IO.Path.Combine("..", "shared", "wire-fixtures");
    }

    /// <summary>The fixture's path; skips the test when it is not there.</summary>
    public static string Path(string name)
    {
        var p = System.IO.Path.Combine(Directory, name);
        Skip.IfNot(File.Exists(p), $"wire fixture {p} is not available");
        return p;
    }

    /// <summary>The fixture as a fake server's fault (status and framing from its name and the README's table).</summary>
    public static FaultSpec Spec(string name, int status = 200) => FaultSpec.Fixture(Path(name), status);
}
