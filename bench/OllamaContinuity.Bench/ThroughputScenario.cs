using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 3: requests per second with N requests in flight, the core (Ollama-only plan, log off) vs raw HttpClient
/// to the same fake Ollama. Each level runs many short paired rounds (raw then core, core then raw, alternately);
/// the figure is the median of the per-round ratios, which a burst of load from another process cannot move much.
/// </summary>
internal static class ThroughputScenario
{
    public static async Task RunAsync(bool quick)
    {
        var (perRound, rounds, warmup) = quick ? (200, 2, 200) : (2000, 10, 1000);
        Console.WriteLine($"## 3. Throughput: {perRound * rounds} requests per side and level, in {rounds} paired rounds of {perRound}");
        Console.WriteLine();

        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        await using var slow = FakeAiServer.Start(FakeApi.Ollama, "ollama-1ms");
        slow.Fault = new FaultSpec(FaultKind.SlowFirstByte) { Delay = TimeSpan.FromMilliseconds(1) };
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();

        var table = new Table("fake Ollama", "concurrency", "raw req/s", "core req/s", "core / raw (median of rounds)", "rounds min..max", "target >= 0.90");
        await RunServerAsync(table, "answers at once", ollama, engine, raw, [1, 16, 64], perRound, rounds, warmup);
        // A real model takes from tens of milliseconds to seconds per answer; 1 ms is still far faster than any.
        await RunServerAsync(table, "answers after 1 ms", slow, engine, raw, [16, 64], perRound / 2, quick ? rounds : rounds / 2, warmup / 2);
        table.Print();
        Console.WriteLine();
        Console.WriteLine("The fake Ollama runs in this process and shares the 2 cores with both clients: the ratio is the figure, not the absolute req/s.");
        Console.WriteLine("The target applies to the first three rows (a server that does no work, the hardest case for the core); the 1 ms rows show how fast the ratio approaches 1 once the server does any work.");
    }

    private static async Task RunServerAsync(Table table, string label, FakeAiServer server, FailoverEngine engine, HttpClient raw,
        int[] levels, int perRound, int rounds, int warmup)
    {
        var ep = BackendEndpoint.Ollama(server.BaseUri.ToString(), "llama3.1:8b");
        var plan = new BackendPlan(null, [ep]) { DisableLog = true };
        var rawPost = await RawPost.ForAsync(raw, ep, Requests.New());
        Func<Task> rawOp = () => rawPost.SendAsync();
        Func<Task> coreOp = async () => Requests.Expect(await engine.SendAsync(Requests.New(), plan), BackendRole.Ollama);

        foreach (var concurrency in levels)
        {
            await RunAsync(rawOp, warmup, concurrency);
            await RunAsync(coreOp, warmup, concurrency);
            TimeSpan rawTime = default, coreTime = default;
            var ratios = new List<double>();
            for (var r = 0; r < rounds; r++)
            {
                TimeSpan a, b;
                if (r % 2 == 0)
                {
                    a = await RunAsync(rawOp, perRound, concurrency);
                    b = await RunAsync(coreOp, perRound, concurrency);
                }
                else
                {
                    b = await RunAsync(coreOp, perRound, concurrency);
                    a = await RunAsync(rawOp, perRound, concurrency);
                }

                rawTime += a;
                coreTime += b;
                ratios.Add(a / b);
            }

            ratios.Sort();
            var median = ratios.Count % 2 == 1 ? ratios[ratios.Count / 2] : (ratios[ratios.Count / 2 - 1] + ratios[ratios.Count / 2]) / 2;
            var total = perRound * rounds;
            table.Row(label, concurrency.ToString(), Fmt.N(total / rawTime.TotalSeconds, "0"), Fmt.N(total / coreTime.TotalSeconds, "0"),
                Fmt.N(median), $"{Fmt.N(ratios[0])}..{Fmt.N(ratios[^1])}", Fmt.Verdict(median >= 0.9));
        }
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
