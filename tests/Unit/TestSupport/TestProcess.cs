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
        var dir = Path.Combine(Path.GetTempPath(), "oc-test-state", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
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
