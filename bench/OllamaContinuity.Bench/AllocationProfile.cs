using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Not a benchmark: where the core's allocations come from. Samples the runtime's GC AllocationTick events
/// (one per ~100 KB allocated) while the core serves sequential requests, and prints the top types.
/// The fake server's allocations are included (it runs in this process).
/// </summary>
internal static class AllocationProfile
{
    public static async Task RunAsync(bool quick)
    {
        var count = quick ? 2000 : 20000;
        Console.WriteLine($"## Allocation profile: {count} core requests (Ollama-only plan, log off) and {count} raw requests, sampled by type");
        Console.WriteLine();
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();
        var ep = BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b");
        var plan = new BackendPlan(null, [ep]) { DisableLog = true };
        var rawOllama = await RawPost.ForAsync(raw, ep, Requests.New());
        for (var i = 0; i < 500; i++)
        {
            await engine.SendAsync(Requests.New(), plan);
            await rawOllama.SendAsync();
        }

        var table = new Table("type", "core KB/req (sampled)", "raw KB/req (sampled)");
        var core = await SampleAsync(count, async () => await engine.SendAsync(Requests.New(), plan));
        var rawSamples = await SampleAsync(count, () => rawOllama.SendAsync());
        foreach (var type in core.Keys.Union(rawSamples.Keys).OrderByDescending(t => core.GetValueOrDefault(t) - rawSamples.GetValueOrDefault(t)).Take(25))
        {
            table.Row(type, Fmt.N(core.GetValueOrDefault(type) / 1024.0 / count, "0.00"), Fmt.N(rawSamples.GetValueOrDefault(type) / 1024.0 / count, "0.00"));
        }

        table.Row("TOTAL", Fmt.N(core.Values.Sum() / 1024.0 / count, "0.00"), Fmt.N(rawSamples.Values.Sum() / 1024.0 / count, "0.00"));
        table.Print();
    }

    private static async Task<Dictionary<string, long>> SampleAsync(int count, Func<Task> op)
    {
        using var listener = new AllocationListener();
        for (var i = 0; i < count; i++)
        {
            await op();
        }

        return new Dictionary<string, long>(listener.Bytes);
    }

    private sealed class AllocationListener : EventListener
    {
        public ConcurrentDictionary<string, long> Bytes { get; } = new();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword: AllocationTick
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || e.Payload is null)
            {
                return;
            }

            var name = e.PayloadNames!.IndexOf("TypeName") is var i and >= 0 ? e.Payload[i] as string ?? "?" : "?";
            var amount = e.PayloadNames.IndexOf("AllocationAmount64") is var j and >= 0 ? Convert.ToInt64(e.Payload[j]) : 100 * 1024;
            Bytes.AddOrUpdate(name, amount, (_, v) => v + amount);
        }
    }
}
