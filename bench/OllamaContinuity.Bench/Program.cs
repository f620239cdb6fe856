using System.Diagnostics;
using System.Runtime;
using System.Runtime.InteropServices;
using OllamaContinuity.Bench;

// Usage: dotnet run -c Release --project bench/OllamaContinuity.Bench -- [all|overhead|blackhole|throughput|rescue|gateway|flap|allocs ...] [--quick]
var scenarios = new List<string>();
var quick = false;
var gateways = new List<GatewayUnderTest>();
var gatewayTimings = false;
var cpuLayout = CpuLayout.Shared;
for (var ai = 0; ai < args.Length; ai++)
{
    var a = args[ai];
    switch (a.ToLowerInvariant())
    {
        case "--gateway" when ai + 1 < args.Length && args[ai + 1].Split('=', 2) is [{ Length: > 0 } label, { Length: > 0 } gdir]:
            // --gateway LABEL=DIR: a laid-out gateway build to measure (several: side by side in the same run).
            gateways.Add(new GatewayUnderTest(label, Path.GetFullPath(gdir), new Dictionary<string, string>()));
            ai++;
            break;
        case "--gateway-env" when ai + 1 < args.Length && args[ai + 1].Split('=', 3) is [{ Length: > 0 } label, { Length: > 0 } name, var value]
                                                         && gateways.FindIndex(g => g.Label == label) is >= 0 and var gi:
            // --gateway-env LABEL=NAME=VALUE: an environment variable for that gateway's process (DOTNET_gcServer=1 ...).
            gateways[gi] = gateways[gi] with { Environment = new Dictionary<string, string>(gateways[gi].Environment) { [name] = value } };
            ai++;
            break;
        case "--gateway-timings":
            gatewayTimings = true;
            break;
        case "--pin" when ai + 1 < args.Length && Enum.TryParse<CpuLayout>(args[ai + 1], ignoreCase: true, out var layout):
            // --pin shared|gateway|cloud: which CPUs the client, the stand-ins and the gateways may use (gateway scenario).
            cpuLayout = layout;
            ai++;
            break;
        case "--quick":
            quick = true;
            break;
        case "-h" or "--help" or "/?":
            Console.WriteLine("OllamaContinuity.Bench [all|overhead|blackhole|throughput|rescue|gateway|flap|allocs ...] [--quick] [--gateway LABEL=DIR]... [--gateway-env LABEL=NAME=VALUE]... [--gateway-timings] [--pin shared|gateway|cloud]");
            Console.WriteLine("  overhead    the failover core vs a raw HttpClient POST, per request (p50/p95/mean)");
            Console.WriteLine("  blackhole   50 requests with a blackholed cloud: the seed's strategy vs the circuit breaker");
            Console.WriteLine("  throughput  requests/s at 1, 16 and 64 concurrent requests vs raw HttpClient");
            Console.WriteLine("  rescue      a cloud stream cut after 40 of 60 words: time to a complete answer vs a client that retries on Ollama");
            Console.WriteLine("  gateway     the gateway: added latency (p50/p99), 64-stream throughput, 200 streams' peak RSS");
            Console.WriteLine("  flap        (not in all) a 60 s outage, one request every 3 s: seed vs the previous ratio-only breaker vs ours;");
            Console.WriteLine("              then the time lost to a dead cloud after 15 healthy requests");
            Console.WriteLine("  allocs      (not in all) where the core's allocations come from, sampled by type");
            Console.WriteLine("  cmdlet      (not in all) Invoke-AiRequest through a real runspace vs raw HttpClient, Invoke-RestMethod and the seed's");
            Console.WriteLine("              Python loop; then 64 concurrent from a runspace pool (build the module in Release first)");
            Console.WriteLine("  --quick     a smoke run (small counts, short timeouts): the figures are not meaningful");
            Console.WriteLine("  --gateway LABEL=DIR         (gateway) a laid-out gateway build to measure; repeat to compare builds in one run");
            Console.WriteLine("                              (default: out/OllamaContinuity/Gateway, from dotnet build src/OllamaContinuity -c Release)");
            Console.WriteLine("  --gateway-env LABEL=NAME=VALUE  (gateway) an environment variable for that gateway's process (after its --gateway)");
            Console.WriteLine("  --gateway-timings           (gateway) print the gateway's own section timings (OLLAMACONTINUITY_GATEWAY_TIMINGS)");
            Console.WriteLine("  --pin shared|gateway|cloud  (gateway) CPUs per process (taskset): shared (default) lets all share every CPU;");
            Console.WriteLine("                              gateway gives the gateways the last CPU and the client and stand-ins the others;");
            Console.WriteLine("                              cloud gives the stand-ins (the remote provider) the last CPU and the client and gateways the others");
            return 0;
        case "all" or "overhead" or "blackhole" or "throughput" or "rescue" or "gateway" or "allocs" or "cmdlet" or "flap":
            scenarios.Add(a.ToLowerInvariant());
            break;
        default:
            Console.Error.WriteLine($"Unknown argument '{a}'. Try --help.");
            return 2;
    }
}

if (scenarios.Count == 0 || scenarios.Contains("all"))
{
    scenarios = ["overhead", "blackhole", "throughput", "rescue", "gateway"];
}

if (Debugger.IsAttached || typeof(Program).Assembly.GetCustomAttributes(typeof(DebuggableAttribute), false)
        .OfType<DebuggableAttribute>().Any(d => d.IsJITOptimizerDisabled))
{
    Console.Error.WriteLine("WARNING: not an optimised build; run with -c Release for meaningful figures.");
}

// The seed's contingency switch would route everything to Ollama and skew the cloud rows.
Environment.SetEnvironmentVariable(OllamaContinuity.Failover.EnvironmentContingencySource.VariableName, null);

Fmt.Quick = quick;
Console.WriteLine($"# OllamaContinuity.Bench {(quick ? "(--quick: smoke run, figures not meaningful)" : "")}");
Console.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription}, " +
                  $"{Environment.ProcessorCount} cores, GC {(GCSettings.IsServerGC ? "server" : "workstation")}; " +
                  (scenarios.SequenceEqual(["gateway"]) ? "the stand-ins and the gateways run in their own processes, on loopback." : "the fake servers run in this same process, on loopback (scenario 5: in their own processes)."));
Console.WriteLine();

var total = Stopwatch.StartNew();
foreach (var s in scenarios)
{
    switch (s)
    {
        case "overhead":
            await OverheadScenario.RunAsync(quick);
            break;
        case "blackhole":
            await BlackholeScenario.RunAsync(quick);
            break;
        case "throughput":
            await ThroughputScenario.RunAsync(quick);
            break;
        case "rescue":
            await RescueScenario.RunAsync(quick);
            break;
        case "gateway":
            await GatewayScenario.RunAsync(quick, gateways, gatewayTimings, cpuLayout);
            break;
        case "flap":
            await FlapScenario.RunAsync(quick);
            break;
        case "allocs":
            await AllocationProfile.RunAsync(quick);
            break;
        case "cmdlet":
            await CmdletScenario.RunAsync(quick);
            break;
    }

    Console.WriteLine();
}

Console.WriteLine($"Finished in {total.Elapsed.TotalSeconds:0.0} s.");
return 0;
