using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using OllamaContinuity.Failover;
using OllamaContinuity.Gateway;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 5: what the gateway adds. A client POSTs the same OpenAI request to the fake cloud directly and to the
/// gateway (in this process, log off) which sends it through the engine to the same fake. Sequential over
/// keep-alive (p50/p99), then throughput at 64 concurrent streams, then 200 concurrent slow streams (peak RSS).
/// </summary>
internal static class GatewayScenario
{
    private const string Token = "oc_bench_token_0123456789abcdefghij";

    public static async Task RunAsync(bool quick)
    {
        Console.WriteLine("## 5. Gateway: added latency and streaming throughput (gateway in this process, request log off)");
        Console.WriteLine();
        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        var dir = Directory.CreateTempSubdirectory("oc-bench-gw-");
        var tokens = Path.Combine(dir.FullName, "tokens.json");
        await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"bench","token":"{{Token}}"}]}""");
        var plan = new BackendPlan(BackendEndpoint.Cloud(BackendKind.OpenAI, cloud.ChatUri.ToString(), "gpt-4o", "sk-bench-not-a-key"),
            [BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b")]) { DisableLog = true };
        var options = new GatewayOptions { Port = 0, TokensFile = tokens, MaxConcurrentRequests = 1000, RatePerMinute = 10_000_000 };
        var app = GatewayApp.Build(options, ClientTokens.Load(tokens), engine, plan, Microsoft.Extensions.Logging.LogLevel.Error);
        await app.StartAsync();
        try
        {
            var gateway = GatewayApp.ListeningUri(app);
            using var http = RawPost.CreateClient();
            var direct = new Uri(cloud.ChatUri.ToString());
            var viaGateway = new Uri(gateway, "/v1/chat/completions");
            await SequentialAsync(http, direct, viaGateway, quick);
            Console.WriteLine();
            await ThroughputAsync(http, direct, viaGateway, quick ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(5));
            Console.WriteLine();
            await ManyStreamsAsync(http, cloud, viaGateway, quick ? 50 : 200);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            dir.Delete(recursive: true);
        }
    }

    private static async Task SequentialAsync(HttpClient http, Uri direct, Uri gateway, bool quick)
    {
        var (rounds, block, warmup) = quick ? (4, 50, 200) : (20, 250, 2000);
        var rows = new (string Name, Uri Uri, Samples Samples)[] { ("direct -> fake cloud", direct, new()), ("client -> gateway -> fake cloud", gateway, new()) };
        foreach (var r in rows)
        {
            for (var i = 0; i < warmup; i++)
            {
                await PostAsync(http, r.Uri, stream: false);
            }
        }

        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < rows.Length; k++)
            {
                var r = rows[(round + k) % rows.Length];
                for (var i = 0; i < block; i++)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    await PostAsync(http, r.Uri, stream: false);
                    r.Samples.Add(t0, Stopwatch.GetTimestamp());
                }
            }
        }

        var table = new Table("sequential, non-streaming, keep-alive", "n", "p50 µs", "p99 µs", "mean µs", "added p50 µs", "added p99 µs");
        foreach (var r in rows)
        {
            table.Row(r.Name, r.Samples.Count.ToString(), Fmt.Us(r.Samples.P50), Fmt.Us(r.Samples.Percentile(0.99)), Fmt.Us(r.Samples.Mean),
                ReferenceEquals(r.Samples, rows[0].Samples) ? "-" : Fmt.Us(r.Samples.P50 - rows[0].Samples.P50),
                ReferenceEquals(r.Samples, rows[0].Samples) ? "-" : Fmt.Us(r.Samples.Percentile(0.99) - rows[0].Samples.Percentile(0.99)));
        }

        table.Print();
        var added = rows[1].Samples.P50 - rows[0].Samples.P50;
        Console.WriteLine($"Target (issue 11): < 300 µs p50 added: {Fmt.Us(added)} µs ({Fmt.Verdict(added < 300)}).");
    }

    private static async Task ThroughputAsync(HttpClient http, Uri direct, Uri gateway, TimeSpan duration)
    {
        var table = new Table("64 concurrent streams", "requests/s", "ratio to direct");
        double? baseline = null;
        foreach (var (name, uri) in new[] { ("direct -> fake cloud", direct), ("client -> gateway -> fake cloud", gateway) })
        {
            var done = 0L;
            using var cts = new CancellationTokenSource(duration);
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
            {
                while (!cts.IsCancellationRequested)
                {
                    await PostAsync(http, uri, stream: true);
                    Interlocked.Increment(ref done);
                }
            }));
            var rps = done / sw.Elapsed.TotalSeconds;
            baseline ??= rps;
            table.Row(name, Fmt.N(rps, "0"), Fmt.N(rps / baseline.Value));
        }

        table.Print();
    }

    private static async Task ManyStreamsAsync(HttpClient http, FakeAiServer cloud, Uri gateway, int count)
    {
        GC.Collect();
        var before = Environment.WorkingSet;
        cloud.ChunkDelay = TimeSpan.FromMilliseconds(20);
        long peak = before;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, Environment.WorkingSet);
                await Task.Delay(10);
            }
        });
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, count).Select(_ => PostAsync(http, gateway, stream: true)));
        sw.Stop();
        sampling.Cancel();
        await sampler;
        cloud.ChunkDelay = TimeSpan.Zero;
        Console.WriteLine($"{count} concurrent slow streams through the gateway: all completed in {sw.Elapsed.TotalSeconds:0.00} s; " +
                          $"process RSS {before / 1048576.0:0} MiB before, peak {peak / 1048576.0:0} MiB (client, gateway and fake servers together).");
    }

    private static readonly byte[] WholeBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","messages":[{"role":"user","content":"Summarize the benefits of local AI in 50 words."}]}""");
    private static readonly byte[] StreamBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Summarize the benefits of local AI in 50 words."}]}""");

    private static async Task PostAsync(HttpClient http, Uri uri, bool stream)
    {
        using var m = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(stream ? StreamBody : WholeBody) };
        m.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var r = await http.SendAsync(m, HttpCompletionOption.ResponseHeadersRead);
        await using var s = await r.Content.ReadAsStreamAsync();
        await s.CopyToAsync(Stream.Null);
        if (!r.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{uri} answered {(int)r.StatusCode}");
        }
    }
}
