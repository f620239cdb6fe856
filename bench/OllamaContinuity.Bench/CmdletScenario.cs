using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using OllamaContinuity.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Bench;

/// <summary>
/// Scenario 4 (issue 10, "speed at the prompt"): Invoke-AiRequest driven through a real PowerShell runspace in this
/// process, the built module imported from out/OllamaContinuity, beside a raw HttpClient POST and the failover core
/// to the same fake Ollama. A trivial cmdlet of the module (no I/O) is the invocation floor: what any command costs
/// through PowerShell.Invoke, which the cmdlet cannot save. (Invoke-RestMethod is not in the hosted runspace here: it
/// ships with Microsoft.PowerShell.SDK, which this bench does not reference.)
/// Variants run interleaved in rotating blocks, each request timed on its own.
/// </summary>
internal static class CmdletScenario
{
    private sealed record Variant(string Name, Func<Task> Run)
    {
        public Samples Samples { get; } = new();
    }

    public static async Task RunAsync(bool quick)
    {
        var (rounds, block, warmup) = quick ? (3, 30, 100) : (10, 200, 1000);
        Console.WriteLine("## 4. Invoke-AiRequest at the prompt: a real runspace vs raw HttpClient (sequential, keep-alive)");
        Console.WriteLine();

        var manifest = Path.Combine(RepoRoot(), "out", "OllamaContinuity", "OllamaContinuity.psd1");
        if (!File.Exists(manifest))
        {
            Console.WriteLine($"Skipped: build the module first (dotnet build src/OllamaContinuity -c Release): {manifest} is missing.");
            return;
        }

        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, "ollama");
        using var engine = new FailoverEngine();
        using var raw = RawPost.CreateClient();
        var logDir = Directory.CreateTempSubdirectory("oc-bench-cmdlet-");
        var savedKey = Environment.GetEnvironmentVariable("CLOUD_API_KEY");
        Environment.SetEnvironmentVariable("CLOUD_API_KEY", null); // no key: the cmdlet skips the cloud (NotConfigured), as the Ollama-only core does
        var iss = InitialSessionState.CreateDefault2();
        using var runspace = RunspaceFactory.CreateRunspace(iss);
        runspace.Open();
        try
        {
            using (var import = PowerShell.Create(runspace))
            {
                import.AddCommand("Import-Module").AddParameter("Name", manifest).Invoke();
                if (import.HadErrors)
                {
                    throw new InvalidOperationException("Import-Module failed: " + string.Join("; ", import.Streams.Error));
                }
            }

            var ollamaEp = BackendEndpoint.Ollama(ollama.BaseUri.ToString(), "llama3.1:8b");
            var rawOllama = await RawPost.ForAsync(raw, ollamaEp, Requests.New());
            var log = Path.Combine(logDir.FullName, "requests.jsonl");
            var ollamaOnlyLogged = new BackendPlan(null, [ollamaEp]) { LogPath = log };
            var prompt = Requests.Prompt[0].Content;

            Task Invoke(Action<PowerShell> build, Func<PSObject, bool> check)
            {
                using var ps = PowerShell.Create(runspace);
                build(ps);
                var result = ps.Invoke();
                if (ps.HadErrors || result.Count != 1 || !check(result[0]))
                {
                    throw new InvalidOperationException("the command failed: " + string.Join("; ", ps.Streams.Error));
                }

                return Task.CompletedTask;
            }

            Variant[] variants =
            [
                new("raw HttpClient -> Ollama", () => rawOllama.SendAsync()),
                new("core SendAsync, Ollama-only, log on", async () => Requests.Expect(await engine.SendAsync(Requests.New(), ollamaOnlyLogged), BackendRole.Ollama)),
                new("Invoke-AiRequest in a runspace, log on", () => Invoke(
                    ps => ps.AddCommand("Invoke-AiRequest").AddParameter("Prompt", prompt).AddParameter("OllamaUri", new[] { ollama.BaseUri.ToString() }).AddParameter("LogPath", log),
                    o => (string)o.Properties["Backend"].Value == "Ollama")),
                new("floor: Get-AiContingency -Workflow x (no request)", () => Invoke(
                    ps => ps.AddCommand("Get-AiContingency").AddParameter("Workflow", new[] { "bench" }),
                    _ => true)),
                new("Invoke-AiRequest -WhatIf (binding, plan, ShouldProcess; no request)", () =>
                {
                    using var ps = PowerShell.Create(runspace);
                    ps.AddCommand("Invoke-AiRequest").AddParameter("Prompt", prompt).AddParameter("OllamaUri", new[] { ollama.BaseUri.ToString() }).AddParameter("LogPath", log).AddParameter("WhatIf");
                    ps.Invoke();
                    return ps.HadErrors ? throw new InvalidOperationException("-WhatIf failed") : Task.CompletedTask;
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
                    for (var i = 0; i < block; i++)
                    {
                        var t0 = Stopwatch.GetTimestamp();
                        await v.Run();
                        v.Samples.Add(t0, Stopwatch.GetTimestamp());
                    }
                }
            }

            var table = new Table("variant", "n", "p50 µs", "p95 µs", "mean µs", "added p50 µs vs raw", "p50 ratio");
            foreach (var v in variants)
            {
                var s = v.Samples;
                var self = ReferenceEquals(v, variants[0]);
                table.Row(v.Name, s.Count.ToString(), Fmt.Us(s.P50), Fmt.Us(s.P95), Fmt.Us(s.Mean),
                    self ? "-" : Fmt.Us(s.P50 - variants[0].Samples.P50), self ? "1.00" : Fmt.N(s.P50 / variants[0].Samples.P50));
            }

            table.Print();
            Console.WriteLine();
            var added = variants[2].Samples.P50 - variants[0].Samples.P50;
            var overFloor = variants[2].Samples.P50 - variants[3].Samples.P50 - variants[0].Samples.P50;
            Console.WriteLine($"Invoke-AiRequest adds {Fmt.Us(added)} µs p50 over raw HttpClient; {Fmt.Us(overFloor)} µs of it beyond the invocation floor " +
                              $"(what any command costs through PowerShell.Invoke). Target < 300 µs p50 added by the cmdlet layer: {Fmt.Verdict(overFloor < 300)}.");
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLOUD_API_KEY", savedKey);
            logDir.Delete(recursive: true);
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
