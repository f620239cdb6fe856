using System.Collections;
using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Reflection;
using System.Runtime.Loader;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 4 (issue 10, "speed at the prompt"): Invoke-AiRequest driven through a real PowerShell runspace in this
/// process (the built module imported from out/OllamaContinuity, the runspace reusing its thread as pwsh's own does),
/// beside a raw HttpClient POST, the failover core, Invoke-RestMethod in the same runspace and the seed's Python loop,
/// all against the same in-process fake cloud (healthy, OpenAI format). A trivial cmdlet of the module is the
/// invocation floor: what any command costs through PowerShell.Invoke, which the cmdlet cannot save. Variants run
/// interleaved in rotating blocks from one dedicated thread (as a prompt waits for each command), each request timed
/// on its own. Then 64 concurrent requests from a runspace pool against raw HttpClient at 64-way concurrency.
/// </summary>
internal static class CmdletScenario
{
    private const string Key = "sk-bench-not-a-key";

    private sealed class Variant(string name, Func<int, double[]> runBlock)
    {
        public string Name { get; } = name;
        public Func<int, double[]> RunBlock { get; } = runBlock;
        public List<double> Us { get; } = new(8192);
        public List<double> RoundP50 { get; } = [];
    }

    public static async Task RunAsync(bool quick)
    {
        var (rounds, block, warmup) = quick ? (3, 30, 100) : (10, 200, 600);
        Console.WriteLine("## 4. Invoke-AiRequest at the prompt: a real runspace vs raw HttpClient, Invoke-RestMethod and the seed's Python loop");
        Console.WriteLine();

        var root = RepoRoot();
        var manifest = Path.Combine(root, "out", "OllamaContinuity", "OllamaContinuity.psd1");
        if (!File.Exists(manifest))
        {
            Console.WriteLine($"Skipped: build the module first (dotnet build src/OllamaContinuity -c Release): {manifest} is missing.");
            return;
        }

        await using var cloud = FakeAiServer.Start(FakeApi.OpenAI, "cloud");
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();
        var logDir = Directory.CreateTempSubdirectory("oc-bench-cmdlet-");
        var log = Path.Combine(logDir.FullName, "requests.jsonl");
        string[] variables = ["CLOUD_API_KEY", "CLOUD_API_URL", "CLOUD_PROVIDER", "OLLAMA_URL", RequestLog.PathVariable];
        var saved = variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);
        // The cmdlet as typed at a prompt: the key in the environment, the request log at its path from the environment.
        Environment.SetEnvironmentVariable("CLOUD_API_KEY", Key);
        Environment.SetEnvironmentVariable("CLOUD_PROVIDER", null);
        Environment.SetEnvironmentVariable(RequestLog.PathVariable, log);
        var utility = FindUtilityModule();
        if (utility is not null)
        {
            // Invoke-RestMethod lives in Microsoft.PowerShell.Commands.Utility, which ships with pwsh (the local .NET tool),
            // not with the System.Management.Automation package: load it and its dependencies (Newtonsoft.Json) from there.
            var dir = Path.GetDirectoryName(utility)!;
            AssemblyLoadContext.Default.Resolving += (ctx, name) =>
                File.Exists(Path.Combine(dir, name.Name + ".dll")) ? ctx.LoadFromAssemblyPath(Path.Combine(dir, name.Name + ".dll")) : null;
        }

        var iss = InitialSessionState.CreateDefault2();
        using var runspace = RunspaceFactory.CreateRunspace(iss);
        runspace.ThreadOptions = PSThreadOptions.ReuseThread; // as pwsh's own runspace at the prompt
        runspace.Open();
        Process? python = null;
        try
        {
            Run(runspace, ps => ps.AddCommand("Import-Module").AddParameter("Name", manifest));
            string? irmProblem = null;
            if (utility is null)
            {
                irmProblem = "Invoke-RestMethod: not measured (Microsoft.PowerShell.Commands.Utility.dll not found under ~/.nuget/packages/powershell; run `dotnet tool restore`).";
            }
            else
            {
                try
                {
                    Run(runspace, ps => ps.AddCommand("Import-Module").AddParameter("Name", utility));
                }
                catch (InvalidOperationException e)
                {
                    irmProblem = "Invoke-RestMethod: not measured (" + e.Message + ").";
                }
            }

            var cloudEp = BackendEndpoint.Cloud(BackendKind.OpenAI, cloud.ChatUri.ToString(), BackendEndpoint.DefaultOpenAIModel, Key);
            var ollamaEp = BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b");
            var rawCloud = await RawPost.ForAsync(raw, cloudEp, Requests.New());
            var corePlan = new BackendPlan(cloudEp, [ollamaEp]) { LogPath = Path.Combine(logDir.FullName, "core.jsonl") };
            var prompt = Requests.Prompt[0].Content;
            var cloudUri = cloud.ChatUri.ToString();
            var ollamaUris = new[] { ollama.BaseUri.ToString() };
            var irmBody = System.Text.Json.JsonSerializer.Serialize(new { model = BackendEndpoint.DefaultOpenAIModel, messages = new[] { new { role = "user", content = prompt } } });
            var irmHeaders = new Hashtable { ["Authorization"] = "Bearer " + Key };
            var (pythonProblem, py) = StartPython(root, cloudUri, ollama.BaseUri + "api/chat");
            python = py;

            var variants = new List<Variant>
            {
                new("raw HttpClient -> cloud", Timed(() => rawCloud.SendAsync().GetAwaiter().GetResult())),
                new("core SendAsync, healthy cloud, log on", Timed(() => Requests.Expect(engine.SendAsync(Requests.New(), corePlan).GetAwaiter().GetResult(), BackendRole.Cloud))),
                new("Invoke-AiRequest in a runspace, log on", Timed(() => Check(Run(runspace,
                    ps => ps.AddCommand("Invoke-AiRequest").AddParameter("Prompt", prompt).AddParameter("CloudUri", cloudUri).AddParameter("OllamaUri", ollamaUris)),
                    o => (string)o.Properties["Backend"].Value == "Cloud"))),
                new("floor: Get-AiContingency -Workflow bench (no request)", Timed(() => Run(runspace, ps => ps.AddCommand("Get-AiContingency").AddParameter("Workflow", new[] { "bench" })))),
                new("Invoke-AiRequest -LogPath <file> (the path resolved by PowerShell)", Timed(() => Check(Run(runspace,
                    ps => ps.AddCommand("Invoke-AiRequest").AddParameter("Prompt", prompt).AddParameter("CloudUri", cloudUri).AddParameter("OllamaUri", ollamaUris).AddParameter("LogPath", log)),
                    o => (string)o.Properties["Backend"].Value == "Cloud"))),
            };
            if (irmProblem is null)
            {
                variants.Add(new("Invoke-RestMethod in the same runspace", Timed(() => Check(Run(runspace,
                    ps => ps.AddCommand("Invoke-RestMethod").AddParameter("Uri", cloudUri).AddParameter("Method", "Post").AddParameter("Headers", irmHeaders)
                        .AddParameter("ContentType", "application/json").AddParameter("Body", irmBody)),
                    o => o.Properties["choices"] is not null))));
            }

            if (python is not null)
            {
                variants.Add(new("seed's Python loop (ai_request, requests.post), python3", n => PythonBlock(python, n, prompt)));
            }

            RunOnDedicatedThread(() =>
            {
                foreach (var v in variants)
                {
                    v.RunBlock(warmup);
                }

                for (var r = 0; r < rounds; r++)
                {
                    for (var k = 0; k < variants.Count; k++)
                    {
                        var v = variants[(r + k) % variants.Count];
                        var us = v.RunBlock(block);
                        v.Us.AddRange(us);
                        v.RoundP50.Add(Percentile(us, 0.5));
                    }
                }
            });

            var rawV = variants[0];
            var table = new Table("variant", "n", "p50 µs", "p99 µs", "mean µs", "added p50 µs vs raw", "p50 ratio to raw");
            foreach (var v in variants)
            {
                var self = ReferenceEquals(v, rawV);
                var p50 = Percentile(v.Us, 0.5);
                table.Row(v.Name, v.Us.Count.ToString(), Fmt.Us(p50), Fmt.Us(Percentile(v.Us, 0.99)), Fmt.Us(v.Us.Average()),
                    self ? "-" : Fmt.Us(p50 - Percentile(rawV.Us, 0.5)), self ? "1.00" : Fmt.N(p50 / Percentile(rawV.Us, 0.5)));
            }

            table.Print();
            Console.WriteLine();
            foreach (var problem in new[] { irmProblem, pythonProblem }.Where(p => p is not null))
            {
                Console.WriteLine(problem);
                Console.WriteLine();
            }

            var cmd = variants[2];
            var floor = variants[3];
            var overFloor = Percentile(cmd.Us, 0.5) - Percentile(floor.Us, 0.5) - Percentile(rawV.Us, 0.5);
            var perRound = Enumerable.Range(0, rounds).Select(r => cmd.RoundP50[r] - floor.RoundP50[r] - rawV.RoundP50[r]).Order().ToArray();
            Console.WriteLine($"Invoke-AiRequest adds {Fmt.Us(Percentile(cmd.Us, 0.5) - Percentile(rawV.Us, 0.5))} µs p50 over raw HttpClient; {Fmt.Us(overFloor)} µs of it " +
                              $"beyond the invocation floor (per round: {Fmt.Us(perRound[0])} .. {Fmt.Us(perRound[^1])}, median {Fmt.Us(perRound[perRound.Length / 2])}). " +
                              $"Target < 300 µs p50 added by the cmdlet layer: {Fmt.Verdict(overFloor < 300)}.");
            foreach (var other in variants.Skip(5))
            {
                Console.WriteLine($"{other.Name}: p50 {Fmt.N(Percentile(other.Us, 0.5) / Percentile(cmd.Us, 0.5))}x Invoke-AiRequest's " +
                                  $"(per round {Fmt.N(Enumerable.Range(0, rounds).Min(r => other.RoundP50[r] / cmd.RoundP50[r]))} .. {Fmt.N(Enumerable.Range(0, rounds).Max(r => other.RoundP50[r] / cmd.RoundP50[r]))}).");
            }

            Console.WriteLine();
            await ConcurrentAsync(quick, manifest, rawCloud, cloudUri, ollamaUris, prompt);
        }
        finally
        {
            if (python is not null)
            {
                try
                {
                    python.StandardInput.WriteLine();
                    python.StandardInput.Close();
                    if (!python.WaitForExit(5000))
                    {
                        python.Kill();
                    }
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                }

                python.Dispose();
            }

            foreach (var (name, value) in saved)
            {
                Environment.SetEnvironmentVariable(name, value);
            }

            logDir.Delete(recursive: true);
        }
    }

    /// <summary>64 requests in flight: Invoke-AiRequest from 64 threads sharing a runspace pool of 64, against raw HttpClient with 64 workers.</summary>
    private static async Task ConcurrentAsync(bool quick, string manifest, RawPost rawCloud, string cloudUri, string[] ollamaUris, string prompt)
    {
        const int Width = 64;
        var (rounds, perWorker) = quick ? (1, 3) : (3, 25);
        Console.WriteLine($"### 64 concurrent requests: a runspace pool of 64 vs raw HttpClient with 64 workers ({Width * perWorker} requests per side per round, {rounds} paired rounds)");
        Console.WriteLine();
        var iss = InitialSessionState.CreateDefault2();
        iss.ImportPSModule(manifest);
        using var pool = RunspaceFactory.CreateRunspacePool(iss);
        pool.SetMaxRunspaces(Width);
        pool.SetMinRunspaces(Width);
        pool.ThreadOptions = PSThreadOptions.ReuseThread;
        var opening = Stopwatch.StartNew();
        pool.Open();

        void CmdletWorker(int count)
        {
            using var ps = PowerShell.Create();
            ps.RunspacePool = pool;
            for (var i = 0; i < count; i++)
            {
                ps.Commands.Clear();
                ps.AddCommand("Invoke-AiRequest").AddParameter("Prompt", prompt).AddParameter("CloudUri", cloudUri).AddParameter("OllamaUri", ollamaUris);
                var result = ps.Invoke();
                if (ps.HadErrors || result.Count != 1)
                {
                    throw new InvalidOperationException("Invoke-AiRequest failed: " + string.Join("; ", ps.Streams.Error));
                }
            }
        }

        TimeSpan Cmdlets(int count)
        {
            var threads = Enumerable.Range(0, Width).Select(_ => new Thread(() => CmdletWorker(count)) { IsBackground = true }).ToArray();
            var sw = Stopwatch.StartNew();
            foreach (var t in threads)
            {
                t.Start();
            }

            foreach (var t in threads)
            {
                t.Join();
            }

            return sw.Elapsed;
        }

        async Task<TimeSpan> Raw(int count)
        {
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, Width).Select(_ => Task.Run(async () =>
            {
                for (var i = 0; i < count; i++)
                {
                    await rawCloud.SendAsync();
                }
            })));
            return sw.Elapsed;
        }

        // Warm-up: every runspace of the pool, and the pool's 64 threads, have run the cmdlet a few times.
        Cmdlets(quick ? 2 : 10);
        await Raw(quick ? 10 : 100);
        Console.WriteLine($"(the pool of {Width} runspaces, each importing the module, opened and warmed in {opening.Elapsed.TotalSeconds:0.0} s)");
        Console.WriteLine();
        var table = new Table("round", "raw HttpClient req/s", "Invoke-AiRequest req/s", "time ratio (cmdlet / raw)");
        var ratios = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            TimeSpan rawT, cmdT;
            if (r % 2 == 0)
            {
                rawT = await Raw(perWorker);
                cmdT = Cmdlets(perWorker);
            }
            else
            {
                cmdT = Cmdlets(perWorker);
                rawT = await Raw(perWorker);
            }

            var n = Width * perWorker;
            ratios.Add(cmdT / rawT);
            table.Row((r + 1).ToString(), Fmt.N(n / rawT.TotalSeconds, "0"), Fmt.N(n / cmdT.TotalSeconds, "0"), Fmt.N(cmdT / rawT, "0.0") + "x");
        }

        table.Print();
        Console.WriteLine();
        var sorted = ratios.Order().ToArray();
        Console.WriteLine($"64 concurrent Invoke-AiRequest calls take {Fmt.N(sorted[sorted.Length / 2], "0.0")}x the time of raw HttpClient at 64-way concurrency (rounds {Fmt.N(sorted[0], "0.0")}x .. {Fmt.N(sorted[^1], "0.0")}x; the issue measured 6.7x).");
    }

    private static Func<int, double[]> Timed(Action once) => n =>
    {
        var us = new double[n];
        for (var i = 0; i < n; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            once();
            us[i] = Stopwatch.GetElapsedTime(t0).Ticks / 10.0;
        }

        return us;
    };

    private static PSObject Run(Runspace runspace, Action<PowerShell> build)
    {
        using var ps = PowerShell.Create(runspace);
        build(ps);
        var result = ps.Invoke();
        if (ps.HadErrors || result.Count > 1)
        {
            throw new InvalidOperationException("the command failed: " + string.Join("; ", ps.Streams.Error));
        }

        return result.Count == 1 ? result[0] : new PSObject();
    }

    private static void Check(PSObject o, Func<PSObject, bool> ok)
    {
        if (!ok(o))
        {
            throw new InvalidOperationException("unexpected output: " + o);
        }
    }

    /// <summary>The seed's loop as a child process (bench/seed/loop.py), or why it cannot run here.</summary>
    private static (string? Problem, Process? Process) StartPython(string root, string cloudUri, string ollamaUri)
    {
        var script = Path.Combine(root, "bench", "seed", "loop.py");
        var psi = new ProcessStartInfo("python3", ["-u", script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true, // the seed logs every request at INFO level; the bench drains and drops it
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(script)!,
        };
        psi.Environment["CLOUD_API_URL"] = cloudUri;
        psi.Environment["CLOUD_API_KEY"] = Key;
        psi.Environment["OLLAMA_URL"] = ollamaUri;
        Process? p;
        try
        {
            p = Process.Start(psi);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return ($"The seed's Python loop: not measured (python3 cannot be started: {e.Message}).", null);
        }

        if (p is null)
        {
            return ("The seed's Python loop: not measured (python3 did not start).", null);
        }

        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        var first = p.StandardOutput.ReadLine();
        if (first != "READY")
        {
            p.Kill();
            p.Dispose();
            return ($"The seed's Python loop: not measured (python3 says: {first ?? "nothing"}; the seed needs the 'requests' package).", null);
        }

        return (null, p);
    }

    private static double[] PythonBlock(Process python, int n, string prompt)
    {
        python.StandardInput.WriteLine($"{n} {prompt}");
        var line = python.StandardOutput.ReadLine() ?? throw new InvalidOperationException("python3 ended");
        if (line.StartsWith("ERR", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("the seed's loop failed: " + line);
        }

        return line.Split(' ').Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>Microsoft.PowerShell.Commands.Utility.dll of the pwsh .NET tool (dotnet-tools.json), or null.</summary>
    private static string? FindUtilityModule()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } np ? np
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // The tool's version is the System.Management.Automation package's (both 7.6.9 here).
        var version = typeof(PSObject).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+', ' ')[0] ?? "";
        var dir = Path.Combine(packages, "powershell", version, "tools");
        if (!Directory.Exists(dir))
        {
            return null;
        }

        var os = OperatingSystem.IsWindows() ? "win" : "unix";
        return Directory.EnumerateFiles(dir, "Microsoft.PowerShell.Commands.Utility.dll", SearchOption.AllDirectories)
            .FirstOrDefault(f => Path.GetFileName(Path.GetDirectoryName(f)) == os);
    }

    private static double Percentile(IReadOnlyCollection<double> xs, double p)
    {
        var sorted = xs.ToArray();
        Array.Sort(sorted);
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }

    private static void RunOnDedicatedThread(Action body)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true, Name = "bench prompt" };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new InvalidOperationException("the scenario failed: " + failure.Message, failure);
        }
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OllamaContinuity.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("OllamaContinuity.sln not found above " + AppContext.BaseDirectory);
    }
}
