using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;

namespace OllamaContinuity.Bench;

/// <summary>One gateway build to measure: a label, the folder of its laid-out executable, extra environment variables.</summary>
internal sealed record GatewayUnderTest(string Label, string Directory, IReadOnlyDictionary<string, string> Environment);

/// <summary>Which CPUs each process of the gateway scenario may run on (set with taskset; the last CPU is the one set apart).</summary>
internal enum CpuLayout
{
    /// <summary>Client, stand-ins and gateways share every CPU.</summary>
    Shared,

    /// <summary>The gateways get the last CPU to themselves; the client and the stand-ins share the others (a gateway host with a core to spare).</summary>
    Gateway,

    /// <summary>The stand-ins get the last CPU (the provider is another machine); the client and the gateways share the others (the application's host).</summary>
    Cloud,
}

/// <summary>The CPU lists of a <see cref="CpuLayout"/> (taskset's -c syntax), or null for no pinning.</summary>
internal sealed record CpuPins(string Client, string StandIns, string Gateways)
{
    public static CpuPins? For(CpuLayout layout)
    {
        var n = Environment.ProcessorCount;
        if (layout == CpuLayout.Shared || n < 2)
        {
            return null;
        }

        var rest = n == 2 ? "0" : $"0-{n - 2}";
        var last = (n - 1).ToString(CultureInfo.InvariantCulture);
        return layout == CpuLayout.Gateway ? new CpuPins(rest, rest, last) : new CpuPins(rest, last, rest);
    }

    /// <summary>Pins every thread of this process (new threads inherit it, and so do child processes unless started pinned).</summary>
    public void PinSelf() => Run("taskset", "-a", "-p", "-c", Client, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));

    /// <summary>A start for <paramref name="exe"/> on <paramref name="cpus"/>: taskset execs it, so the process id stays the program's.</summary>
    public static ProcessStartInfo Start(string? cpus, string exe)
    {
        if (cpus is null)
        {
            return new ProcessStartInfo(exe);
        }

        var psi = new ProcessStartInfo("taskset");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(cpus);
        psi.ArgumentList.Add(exe);
        return psi;
    }

    private static void Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({p.ExitCode})");
        }
    }
}

/// <summary>
/// Scenario 5: what the gateway adds. Three kinds of process: this one (the client), the stand-in servers
/// (tests/FakeServer, one process per stand-in) and each gateway (the real laid-out executable, as Start-AiGateway runs
/// it, request log on). The client POSTs the same OpenAI request to the stand-in directly and through each gateway,
/// in interleaved blocks (sequential over keep-alive: p50/p99 per round), then 64 concurrent streams (interleaved
/// timed rounds), then 200 concurrent slow streams through a fresh gateway process per build (its VmHWM).
/// </summary>
internal static class GatewayScenario
{
    /// <summary>One way to reach the stand-in, and the CPU time (clock ticks) of the server process that side measures.</summary>
    private sealed record Side(string Name, Uri Uri, Func<long> CpuTicks);

    private const string Token = "oc_bench_token_0123456789abcdefghij";

    public static async Task RunAsync(bool quick, IReadOnlyList<GatewayUnderTest> gateways, bool timings, CpuLayout layout = CpuLayout.Shared)
    {
        var pins = CpuPins.For(layout);
        var root = RepoRoot();
        if (gateways.Count == 0)
        {
            gateways = [new GatewayUnderTest("gateway", Path.Combine(root, "out", "OllamaContinuity", "Gateway"), new Dictionary<string, string>())];
        }

        Console.WriteLine("## 5. Gateway: added latency, streaming throughput, memory (client, stand-ins and gateway in separate processes)");
        Console.WriteLine();
        if (gateways.FirstOrDefault(g => !File.Exists(Path.Combine(g.Directory, "OllamaContinuity.Gateway"))) is { } missing)
        {
            Console.WriteLine($"Skipped: no gateway executable in {missing.Directory} (`dotnet build src/OllamaContinuity -c Release` lays it out).");
            return;
        }

        foreach (var g in gateways)
        {
            Console.WriteLine($"- `{g.Label}`: {g.Directory}{(g.Environment.Count == 0 ? "" : " with " + string.Join(" ", g.Environment.Select(e => e.Key + "=" + e.Value)))}");
        }

        Console.WriteLine(pins is null
            ? $"CPUs: every process shares all {Environment.ProcessorCount}{(layout == CpuLayout.Shared ? "" : $" (--pin {layout.ToString().ToLowerInvariant()} needs at least 2 CPUs)")}."
            : $"CPUs (--pin {layout.ToString().ToLowerInvariant()}, taskset): client {pins.Client}, stand-ins {pins.StandIns}, gateways {pins.Gateways}.");
        pins?.PinSelf();
        Console.WriteLine();
        var dir = Directory.CreateTempSubdirectory("oc-bench-gw-");
        var tokens = Path.Combine(dir.FullName, "tokens.json");
        await File.WriteAllTextAsync(tokens, $$"""{"tokens":[{"name":"bench","token":"{{Token}}"}]}""");
        var fake = FakeServerDll(root);
        try
        {
            await using var cloud = await StandIn.StartAsync(pins?.StandIns, fake, "--api", "openai", "--name", "cloud");
            await using var ollama = await StandIn.StartAsync(pins?.StandIns, fake, "--api", "ollama", "--name", "ollama");
            var running = new List<GatewayProcess>();
            try
            {
                foreach (var g in gateways)
                {
                    running.Add(await GatewayProcess.StartAsync(pins?.Gateways, g, dir.FullName, tokens, cloud.ChatUri, ollama.BaseUri, timings));
                }

                using var http = RawPost.CreateClient();
                var sides = new List<Side> { new("direct -> stand-in", cloud.ChatUri, cloud.CpuTicks) };
                sides.AddRange(running.Select(p => new Side($"client -> {p.Label} -> stand-in", new Uri(p.Uri, "/v1/chat/completions"), p.CpuTicks)));
                await SequentialAsync(http, sides, quick);
                Console.WriteLine();
                await ThroughputAsync(http, sides, cloud.CpuTicks, quick);
                Console.WriteLine();
                foreach (var p in running)
                {
                    Console.WriteLine($"`{p.Label}` process after the runs above: VmRSS {Mib(p.Status("VmRSS"))} MiB, VmHWM {Mib(p.Status("VmHWM"))} MiB.");
                }
            }
            finally
            {
                foreach (var p in running)
                {
                    await p.DisposeAsync();
                }
            }

            if (timings)
            {
                foreach (var p in running)
                {
                    Console.WriteLine();
                    Console.WriteLine($"Where `{p.Label}`'s time went ({GatewaySectionsNote}):");
                    Console.WriteLine();
                    Console.Write(File.Exists(p.TimingsFile) ? await File.ReadAllTextAsync(p.TimingsFile) : "(no timings written: the build has no timing hook)\n");
                }
            }

            Console.WriteLine();
            await using var slow = await StandIn.StartAsync(pins?.StandIns, fake, "--api", "openai", "--name", "slow", "--words", "100", "--chunk-delay-ms", "20");
            var table = new Table($"{(quick ? 50 : 200)} concurrent slow streams (49 chunks, 20 ms apart), twice", "s per wave", "VmRSS idle MiB", "VmHWM MiB");
            foreach (var g in gateways)
            {
                await using var p = await GatewayProcess.StartAsync(pins?.Gateways, g, dir.FullName, tokens, slow.ChatUri, ollama.BaseUri, timings: false);
                await ManyStreamsAsync(p, table, quick ? 50 : 200);
            }

            table.Print();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private const string GatewaySectionsNote = "the gateway's own Stopwatch sections (OLLAMACONTINUITY_GATEWAY_TIMINGS) over every request it served in this run, " +
        "warm-up included; the rows before Engine are whole answers only, the Stream rows streams only";

    private static async Task SequentialAsync(HttpClient http, List<Side> sides, bool quick)
    {
        var (rounds, block, warmup) = quick ? (3, 50, 200) : (12, 300, 3000);
        var all = sides.Select(_ => new Samples()).ToArray();
        var cpu = new long[sides.Count];
        var perRound = sides.Select(_ => new List<double>()).ToArray();
        // Warm-up of every side, whole answers and streams, so that the timed rounds run tiered-up code (a gateway is a
        // long-running service): the JIT was a quarter of a fresh gateway's CPU in its first 20 s.
        for (var s = 0; s < sides.Count; s++)
        {
            for (var i = 0; i < warmup; i++)
            {
                await PostAsync(http, sides[s].Uri, stream: false);
            }

            await BurstAsync(http, sides[s].Uri, TimeSpan.FromSeconds(quick ? 0.5 : 3));
            for (var i = 0; i < warmup / 2; i++)
            {
                await PostAsync(http, sides[s].Uri, stream: false);
            }
        }

        var settled = await SettleAsync(sides, quick ? 2 : 15);
        for (var round = 0; round < rounds; round++)
        {
            var thisRound = sides.Select(_ => new Samples()).ToArray();
            for (var k = 0; k < sides.Count; k++)
            {
                var s = (round + k) % sides.Count;
                var c0 = sides[s].CpuTicks();
                for (var i = 0; i < block; i++)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    await PostAsync(http, sides[s].Uri, stream: false);
                    var t1 = Stopwatch.GetTimestamp();
                    all[s].Add(t0, t1);
                    thisRound[s].Add(t0, t1);
                }

                cpu[s] += sides[s].CpuTicks() - c0;
            }

            for (var s = 0; s < sides.Count; s++)
            {
                perRound[s].Add(thisRound[s].P50 - thisRound[0].P50);
            }
        }

        Console.WriteLine($"Sequential non-streaming requests over keep-alive: {rounds} rounds, each side a block of {block} per round in rotating order, after a warm-up of {warmup} requests, {(quick ? 0.5 : 3)} s of 64 streams and {warmup / 2} requests per side, then {settled:0.0} s until every server process was idle (the runtime's background tier-1 compiles done).");
        Console.WriteLine();
        var table = new Table("sequential, non-streaming, keep-alive", "n", "p50 µs", "p99 µs", "mean µs", "added p50 µs", "added p99 µs", "p50 ratio", "added p50 per round, median (min..max)", "server CPU µs/req*");
        for (var s = 0; s < sides.Count; s++)
        {
            var first = s == 0;
            var rs = perRound[s].Order().ToArray();
            table.Row(sides[s].Name, all[s].Count.ToString(CultureInfo.InvariantCulture), Fmt.Us(all[s].P50), Fmt.Us(all[s].Percentile(0.99)), Fmt.Us(all[s].Mean),
                first ? "-" : Fmt.Us(all[s].P50 - all[0].P50),
                first ? "-" : Fmt.Us(all[s].Percentile(0.99) - all[0].Percentile(0.99)),
                Fmt.N(all[s].P50 / all[0].P50),
                first ? "-" : $"{Fmt.Us(rs[rs.Length / 2])} ({Fmt.Us(rs[0])}..{Fmt.Us(rs[^1])})",
                Fmt.Us(TicksToUs(cpu[s]) / all[s].Count));
        }

        table.Print();
        Console.WriteLine("*CPU time (user + system, /proc/<pid>/stat) of the server process the row measures, per request: the stand-in's on the direct row, " +
                          "the gateway's own on a gateway row (the stand-in's share is the same on every row). Contention on a shared machine lengthens wall-clock latency far more than this.");
        for (var s = 1; s < sides.Count; s++)
        {
            var added = all[s].P50 - all[0].P50;
            Console.WriteLine($"Target (issue 11) for {sides[s].Name}: < 300 µs p50 added: {Fmt.Us(added)} µs ({Fmt.Verdict(added < 300)}).");
        }
    }

    /// <summary>
    /// Waits, after the warm-up, until no server process uses CPU any more: the runtime compiles hot methods again
    /// (tier 1) on a background thread after a delay, and that work must not land in the timed rounds. Returns the
    /// seconds it took (at most <paramref name="maxSeconds"/>).
    /// </summary>
    private static async Task<double> SettleAsync(List<Side> sides, int maxSeconds)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < maxSeconds)
        {
            var before = sides.Select(s => s.CpuTicks()).ToArray();
            await Task.Delay(500);
            // At most 2 clock ticks (20 ms) in 500 ms: idle, apart from timers.
            if (sides.Select((s, i) => s.CpuTicks() - before[i]).All(d => d <= 2))
            {
                break;
            }
        }

        return sw.Elapsed.TotalSeconds;
    }

    private static async Task ThroughputAsync(HttpClient http, List<Side> sides, Func<long> standInCpu, bool quick)
    {
        var (rounds, seconds) = quick ? (1, 1.0) : (6, 2.0);
        var rps = sides.Select(_ => new List<double>()).ToArray();
        var cpu = new double[sides.Count];
        var clientCpu = new double[sides.Count];
        var standCpu = new double[sides.Count];
        var count = new double[sides.Count];
        // Warm-up: one short burst per side (connections opened, code jitted).
        foreach (var side in sides)
        {
            await BurstAsync(http, side.Uri, TimeSpan.FromSeconds(0.5));
        }

        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < sides.Count; k++)
            {
                var s = (round + k) % sides.Count;
                var (c0, me0, st0) = (sides[s].CpuTicks(), CpuTicksOf(Environment.ProcessId), standInCpu());
                var r = await BurstAsync(http, sides[s].Uri, TimeSpan.FromSeconds(seconds));
                cpu[s] += sides[s].CpuTicks() - c0;
                clientCpu[s] += CpuTicksOf(Environment.ProcessId) - me0;
                standCpu[s] += standInCpu() - st0;
                count[s] += r.Done;
                rps[s].Add(r.PerSecond);
            }
        }

        Console.WriteLine($"64 concurrent streaming clients (each POSTs, reads the whole SSE stream, repeats): {rounds} rounds of {seconds:0.#} s per side in rotating order.");
        Console.WriteLine();
        var table = new Table("64 concurrent streams", "requests/s (median of rounds)", "ratio to direct (median of rounds)", "ratio per round min..max", "target >= 0.85",
            "CPU µs/req: client", "stand-in", "gateway", "all", "CPU ratio**");
        double All(int i) => TicksToUs(clientCpu[i] + standCpu[i] + (i == 0 ? 0 : cpu[i])) / count[i];
        for (var s = 0; s < sides.Count; s++)
        {
            var ratios = rps[s].Zip(rps[0], (a, b) => a / b).Order().ToArray();
            var median = ratios[ratios.Length / 2];
            table.Row(sides[s].Name, Fmt.N(rps[s].Order().ElementAt(rps[s].Count / 2), "0"), Fmt.N(median),
                $"{Fmt.N(ratios[0])}..{Fmt.N(ratios[^1])}", s == 0 ? "" : Fmt.Verdict(median >= 0.85),
                Fmt.Us(TicksToUs(clientCpu[s]) / count[s]), Fmt.Us(TicksToUs(standCpu[s]) / count[s]), s == 0 ? "-" : Fmt.Us(TicksToUs(cpu[s]) / count[s]),
                Fmt.Us(All(s)), s == 0 ? "-" : Fmt.N(All(0) / All(s)));
        }

        table.Print();
        Console.WriteLine("**CPU ratio: the CPU time per request of every process on the direct side (client and stand-in) over that of this side (client, stand-in and gateway).");
        Console.WriteLine("When the machine's CPUs are the bottleneck, this is the highest throughput ratio the side can reach: requests/s = CPUs / CPU per request.");
    }

    private static async Task<(double PerSecond, long Done)> BurstAsync(HttpClient http, Uri uri, TimeSpan duration)
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
        return (done / sw.Elapsed.TotalSeconds, done);
    }

    private static async Task ManyStreamsAsync(GatewayProcess gateway, Table table, int count)
    {
        using var http = RawPost.CreateClient();
        var uri = new Uri(gateway.Uri, "/v1/chat/completions");
        for (var i = 0; i < 20; i++)
        {
            await PostAsync(http, uri, stream: false);
        }

        var idle = gateway.Status("VmRSS");
        var waves = new List<double>();
        for (var wave = 0; wave < 2; wave++)
        {
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, count).Select(_ => PostAsync(http, uri, stream: true)));
            waves.Add(sw.Elapsed.TotalSeconds);
        }

        table.Row(gateway.Label, string.Join(" / ", waves.Select(w => Fmt.N(w))), Mib(idle), Mib(gateway.Status("VmHWM")));
    }

    private static double TicksToUs(double ticks) => ticks * 1_000_000.0 / 100; // USER_HZ is 100 on Linux

    /// <summary>utime + stime of a process, in clock ticks (/proc/&lt;pid&gt;/stat fields 14 and 15).</summary>
    private static long CpuTicksOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    }

    private static string Mib(long kib) => (kib / 1024.0).ToString("0", CultureInfo.InvariantCulture);

    private static readonly byte[] WholeBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","messages":[{"role":"user","content":"Summarize the benefits of local AI in 50 words."}]}""");
    private static readonly byte[] StreamBody = Encoding.UTF8.GetBytes("""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Summarize the benefits of local AI in 50 words."}]}""");
    private static readonly AuthenticationHeaderValue Bearer = new("Bearer", Token);
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private static async Task PostAsync(HttpClient http, Uri uri, bool stream)
    {
        using var m = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(stream ? StreamBody : WholeBody) };
        m.Content.Headers.ContentType = Json;
        m.Headers.Authorization = Bearer;
        using var r = await http.SendAsync(m, HttpCompletionOption.ResponseHeadersRead);
        await using var s = await r.Content.ReadAsStreamAsync();
        await s.CopyToAsync(Stream.Null);
        if (!r.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{uri} answered {(int)r.StatusCode}");
        }
    }

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "OllamaContinuity.sln")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException("OllamaContinuity.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The stand-in servers' process (tests/FakeServer), built in Release when it is not there yet.</summary>
    private static string FakeServerDll(string root)
    {
        var dll = Path.Combine(root, "tests", "FakeServer", "bin", "Release", "net10.0", "OllamaContinuity.FakeServer.dll");
        if (!File.Exists(dll))
        {
            using var build = Process.Start(new ProcessStartInfo("dotnet", ["build", Path.Combine(root, "tests", "FakeServer"), "-c", "Release", "-v", "q"]) { UseShellExecute = false })!;
            build.WaitForExit();
        }

        return File.Exists(dll) ? dll : throw new InvalidOperationException("The stand-in server is not built: " + dll);
    }

    /// <summary>A stand-in server (tests/FakeServer) in its own process; it exits when its standard input closes.</summary>
    private sealed class StandIn : IAsyncDisposable
    {
        private readonly Process _process;

        private StandIn(Process process, Uri baseUri, Uri chatUri)
        {
            _process = process;
            BaseUri = baseUri;
            ChatUri = chatUri;
        }

        public Uri BaseUri { get; }
        public Uri ChatUri { get; }

        public long CpuTicks() => CpuTicksOf(_process.Id);

        public static async Task<StandIn> StartAsync(string? cpus, string dll, params string[] args)
        {
            var psi = CpuPins.Start(cpus, "dotnet");
            (psi.UseShellExecute, psi.RedirectStandardInput, psi.RedirectStandardOutput) = (false, true, true);
            psi.ArgumentList.Add(dll);
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }

            var p = Process.Start(psi)!;
            var line = await ReadListeningAsync(p);
            var parts = line.Split(' ');
            return new StandIn(p, new Uri(parts[1]), new Uri(parts[2]));
        }

        public async ValueTask DisposeAsync()
        {
            _process.StandardInput.Close();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }

    /// <summary>A gateway process, the laid-out executable with the stand-ins as its backends; stopped with SIGTERM (as systemd does).</summary>
    private sealed class GatewayProcess : IAsyncDisposable
    {
        private readonly Process _process;

        private GatewayProcess(Process process, string label, Uri uri, string timingsFile)
        {
            _process = process;
            Label = label;
            Uri = uri;
            TimingsFile = timingsFile;
        }

        public string Label { get; }
        public Uri Uri { get; }
        public string TimingsFile { get; }

        public long CpuTicks() => CpuTicksOf(_process.Id);

        public static async Task<GatewayProcess> StartAsync(string? cpus, GatewayUnderTest g, string dir, string tokens, Uri cloud, Uri ollama, bool timings)
        {
            var exe = Path.Combine(g.Directory, "OllamaContinuity.Gateway");
            if (!File.Exists(exe))
            {
                throw new InvalidOperationException($"No gateway at {exe}: build it first (dotnet build src/OllamaContinuity -c Release lays it out).");
            }

            var state = Path.Combine(dir, g.Label + "-" + Guid.NewGuid().ToString("n")[..8]);
            Directory.CreateDirectory(state);
            var psi = CpuPins.Start(cpus, exe);
            (psi.UseShellExecute, psi.RedirectStandardOutput, psi.RedirectStandardError) = (false, true, true);
            foreach (var a in new[] { "--tokens-file", tokens, "--port", "0", "--max-concurrency", "1000", "--rate-per-minute", "10000000", "--log-path", Path.Combine(state, "requests.jsonl") })
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["CLOUD_PROVIDER"] = "OpenAI";
            psi.Environment["CLOUD_API_URL"] = cloud.ToString();
            psi.Environment["CLOUD_API_KEY"] = "sk-bench-not-a-key";
            psi.Environment["CLOUD_MODEL"] = "gpt-4o";
            psi.Environment["OLLAMA_URL"] = ollama.ToString();
            psi.Environment["OLLAMA_MODEL"] = "llama3.1:8b";
            psi.Environment["OLLAMACONTINUITY_STATE_DIR"] = state;
            psi.Environment.Remove(OllamaContinuity.Failover.EnvironmentContingencySource.VariableName);
            var timingsFile = Path.Combine(state, "timings.md");
            if (timings)
            {
                psi.Environment["OLLAMACONTINUITY_GATEWAY_TIMINGS"] = timingsFile;
            }

            foreach (var (k, v) in g.Environment)
            {
                psi.Environment[k] = v;
            }

            var p = Process.Start(psi)!;
            p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { Length: > 0 })
                {
                    Console.Error.WriteLine($"[{g.Label}] {e.Data}");
                }
            };
            p.BeginErrorReadLine();
            var line = await ReadListeningAsync(p);
            // Keep draining its console so that a chatty gateway never blocks on a full pipe.
            _ = p.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
            return new GatewayProcess(p, g.Label, new Uri(line.Split(' ')[1]), timingsFile);
        }

        /// <summary>A /proc/&lt;pid&gt;/status field in KiB (VmRSS, VmHWM).</summary>
        public long Status(string field)
        {
            foreach (var l in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (l.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    return long.Parse(l[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }

            return -1;
        }

        public async ValueTask DisposeAsync()
        {
            _ = Kill(_process.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int Kill(int pid, int signal);
    }

    private static async Task<string> ReadListeningAsync(Process p)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await p.StandardOutput.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                return line;
            }
        }

        throw new InvalidOperationException($"The process {p.StartInfo.FileName} exited before listening (exit code {(p.HasExited ? p.ExitCode : -1)}).");
    }
}
