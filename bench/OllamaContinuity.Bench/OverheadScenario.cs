using System.Diagnostics;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 1: what the failover core adds to one sequential request. Five variants run interleaved in rotating
/// order, in blocks, so drift on a noisy machine hits all of them alike; every request is timed on its own.
/// </summary>
internal static class OverheadScenario
{
    private sealed record Variant(string Name, Func<Task> Run)
    {
        public Samples Samples { get; } = new();
        public long AllocatedBytes { get; set; }
    }

    public static async Task RunAsync(bool quick)
    {
        var (rounds, block, warmup) = quick ? (4, 50, 200) : (20, 250, 2000);
        Console.WriteLine("## 1. Overhead per request (sequential, non-streaming, keep-alive, both sides warmed up)");
        Console.WriteLine();

        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();
        var logDir = Directory.CreateTempSubdirectory("oc-bench-");
        try
        {
            var ollamaEp = BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b");
            var cloudEp = BackendEndpoint.Cloud(BackendKind.OpenAI, cloud.ChatUri.ToString(), "gpt-4o", "sk-bench-not-a-key");
            var ollamaOnly = new BackendPlan(null, [ollamaEp]) { DisableLog = true };
            var ollamaOnlyLogged = new BackendPlan(null, [ollamaEp]) { LogPath = Path.Combine(logDir.FullName, "requests.jsonl") };
            var withCloud = new BackendPlan(cloudEp, [ollamaEp]) { DisableLog = true };
            var rawOllama = await RawPost.ForAsync(raw, ollamaEp, Requests.New());
            var rawCloud = await RawPost.ForAsync(raw, cloudEp, Requests.New());
            var rawViaEngine = await RawPost.ForAsync(engine.HttpPool.Client, ollamaEp, Requests.New());

            Variant[] variants =
            [
                new("raw HttpClient -> Ollama", () => rawOllama.SendAsync()),
                new("core, Ollama-only plan, log off", async () => Requests.Expect(await engine.SendAsync(Requests.New(), ollamaOnly), BackendRole.Ollama)),
                new("core, Ollama-only plan, log on", async () => Requests.Expect(await engine.SendAsync(Requests.New(), ollamaOnlyLogged), BackendRole.Ollama)),
                new("raw HttpClient -> cloud", () => rawCloud.SendAsync()),
                new("core, healthy cloud, log off", async () => Requests.Expect(await engine.SendAsync(Requests.New(), withCloud), BackendRole.Cloud)),
                // Decomposition of the Ollama-only row: the same raw POST through the engine's HttpClient, then one attempt without SendAsync around it.
                new("raw POST via the engine's HttpClient -> Ollama", () => rawViaEngine.SendAsync()),
                new("one attempt (AttemptAsync) -> Ollama", async () =>
                {
                    if (!(await engine.AttemptAsync(ollamaEp, Requests.New(), null, CancellationToken.None)).Succeeded)
                    {
                        throw new InvalidOperationException("the attempt failed");
                    }
                }),
            ];

            foreach (var v in variants)
            {
                for (var i = 0; i < warmup; i++)
                {
                    await v.Run();
                }
            }

            for (var r = 0; r < rounds; r++)
            {
                for (var k = 0; k < variants.Length; k++)
                {
                    var v = variants[(r + k) % variants.Length];
                    var before = GC.GetTotalAllocatedBytes(precise: true);
                    for (var i = 0; i < block; i++)
                    {
                        var t0 = Stopwatch.GetTimestamp();
                        await v.Run();
                        v.Samples.Add(t0, Stopwatch.GetTimestamp());
                    }

                    v.AllocatedBytes += GC.GetTotalAllocatedBytes(precise: true) - before;
                }
            }

            // Each row against the raw POST to the same fake: (row, its baseline).
            PrintTable("variant", variants, [(0, 0), (1, 0), (2, 0), (3, 3), (4, 3)]);
            Console.WriteLine();
            PrintTable("where the Ollama-only core's time goes", variants, [(0, 0), (5, 0), (6, 0), (1, 0)]);
            Console.WriteLine();
            Console.WriteLine("Added p50 = p50(core) - p50(raw to the same fake). *Allocations are the whole process per request, the in-process fake server included.");
            var added = variants[1].Samples.P50 - variants[0].Samples.P50;
            var addedCloud = variants[4].Samples.P50 - variants[3].Samples.P50;
            Console.WriteLine($"Target: < 1000 µs p50 added. Ollama-only: {Fmt.Us(added)} µs ({Fmt.Verdict(added < 1000)}); " +
                              $"healthy cloud: {Fmt.Us(addedCloud)} µs ({Fmt.Verdict(addedCloud < 1000)}).");
        }
        finally
        {
            logDir.Delete(recursive: true);
        }
    }

    private static void PrintTable(string title, Variant[] variants, (int Row, int Baseline)[] rows)
    {
        var table = new Table(title, "n", "p50 µs", "p95 µs", "mean µs", "added p50 µs", "p50 ratio", "alloc/req KB*");
        foreach (var (row, baseline) in rows)
        {
            Print(table, variants[row], variants[baseline]);
        }

        table.Print();
    }

    private static void Print(Table table, Variant v, Variant baseline)
    {
        var s = v.Samples;
        var self = ReferenceEquals(v, baseline);
        table.Row(v.Name, s.Count.ToString(), Fmt.Us(s.P50), Fmt.Us(s.P95), Fmt.Us(s.Mean),
            self ? "-" : Fmt.Us(s.P50 - baseline.Samples.P50),
            self ? "1.00" : Fmt.N(s.P50 / baseline.Samples.P50),
            Fmt.N(v.AllocatedBytes / 1024.0 / s.Count, "0.0"));
    }
}
