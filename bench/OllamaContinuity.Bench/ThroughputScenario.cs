using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 3: requests per second with N requests in flight, the core (Ollama-only plan, log off) vs raw HttpClient
/// to the same fake Ollama. Each level alternates raw and core in several rounds and sums the time per side.
/// </summary>
internal static class ThroughputScenario
{
    public static async Task RunAsync(bool quick)
    {
        var (perLevel, rounds, warmup) = quick ? (400, 2, 200) : (20000, 4, 1000);
        Console.WriteLine($"## 3. Throughput: {perLevel} requests per side and level, in {rounds} alternating rounds");
        Console.WriteLine();

        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();
        var ollamaEp = BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b");
        var plan = new BackendPlan(null, [ollamaEp]) { DisableLog = true };
        var rawOllama = await RawPost.ForAsync(raw, ollamaEp, Requests.New());
        Func<Task> rawOp = () => rawOllama.SendAsync();
        Func<Task> coreOp = async () => Requests.Expect(await engine.SendAsync(Requests.New(), plan), BackendRole.Ollama);

        var table = new Table("concurrency", "raw req/s", "core req/s", "core / raw", "target >= 0.90");
        foreach (var concurrency in new[] { 1, 16, 64 })
        {
            await RunAsync(rawOp, warmup, concurrency);
            await RunAsync(coreOp, warmup, concurrency);
            TimeSpan rawTime = default, coreTime = default;
            for (var r = 0; r < rounds; r++)
            {
                var n = perLevel / rounds;
                if (r % 2 == 0)
                {
                    rawTime += await RunAsync(rawOp, n, concurrency);
                    coreTime += await RunAsync(coreOp, n, concurrency);
                }
                else
                {
                    coreTime += await RunAsync(coreOp, n, concurrency);
                    rawTime += await RunAsync(rawOp, n, concurrency);
                }
            }

            var done = perLevel / rounds * rounds;
            var rawRps = done / rawTime.TotalSeconds;
            var coreRps = done / coreTime.TotalSeconds;
            table.Row(concurrency.ToString(), Fmt.N(rawRps, "0"), Fmt.N(coreRps, "0"), Fmt.N(coreRps / rawRps), coreRps / rawRps >= 0.9 ? "met" : "MISSED");
        }

        table.Print();
        Console.WriteLine();
        Console.WriteLine("The fake Ollama runs in this process and shares the cores with both clients: the ratio is the figure, not the absolute req/s.");
    }

    /// <summary><paramref name="count"/> operations by <paramref name="concurrency"/> workers; the wall time.</summary>
    private static async Task<TimeSpan> RunAsync(Func<Task> op, int count, int concurrency)
    {
        var next = 0;
        var sw = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= count)
            {
                await op().ConfigureAwait(false);
            }
        }));
        await Task.WhenAll(workers);
        return sw.Elapsed;
    }
}
