namespace OllamaContinuity.TestSupport;

/// <summary>
/// Hundreds of tests start at once on a 2-core machine, and some block a pool thread for a while (process exits,
/// namespace set-up). Without enough pool threads, a loopback connect's completion can wait behind them and
/// trip a sub-second timeout. The product never blocks pool threads; the tests do, so the tests raise the floor.
/// </summary>
public static class TestThreadPool
{
    /// <summary>Called from each test assembly's module initializer, before any test runs.</summary>
    public static void Raise()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 64), Math.Max(io, 64));
    }
}

/// <summary>
/// Keeps every test's module state (request log, contingency state and log, alert settings and records, drill
/// marker) out of the real user's state directory: a temp directory per test process, unless the runner set one.
/// </summary>
public static class TestState
{
    public static void Isolate()
    {
        var dir = Path.Combine(TestPaths.Root, "state");
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR")))
        {
            Environment.SetEnvironmentVariable("OLLAMACONTINUITY_STATE_DIR", dir);
        }

        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OLLAMACONTINUITY_LOG_PATH")))
        {
            Environment.SetEnvironmentVariable("OLLAMACONTINUITY_LOG_PATH", Path.Combine(dir, "requests.jsonl"));
        }
    }
}

/// <summary>
/// Where tests put their files: one folder per test process, created by the user running the tests (so root's
/// and another user's runs on one machine never share a folder that one of them cannot write).
/// </summary>
public static class TestPaths
{
    /// <summary>
    /// <c>$TMPDIR/oc-tests-&lt;user&gt;-&lt;pid&gt;</c>: named, not created, until a test creates something under it. Child
    /// processes that never write get no folder. .ci/run removes these folders after the run.
    /// </summary>
    public static string Root { get; } = Path.Combine(Path.GetTempPath(),
        $"oc-tests-{Environment.UserName}-{Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)}");

    /// <summary>A new, not yet created path under <see cref="Root"/>: <c>Root/tag/guid</c>.</summary>
    public static string New(string tag) => Path.Combine(Root, tag, Guid.NewGuid().ToString("n"));
}
