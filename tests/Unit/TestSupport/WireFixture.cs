using Xunit;

namespace OllamaContinuity.TestSupport;

/// <summary>
/// Real provider bytes (see /work/shared/wire-fixtures/README.md): the folder named by
/// <c>OLLAMACONTINUITY_WIRE_FIXTURES</c>, else /work/shared/wire-fixtures. A test that needs one is skipped when absent.
/// </summary>
public static class WireFixture
{
    public static string Directory { get; } =
        Environment.GetEnvironmentVariable("OLLAMACONTINUITY_WIRE_FIXTURES") is { Length: > 0 } d ? d : "/work/shared/wire-fixtures";

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
