using OllamaContinuity.Contingency;

namespace OllamaContinuity.Tests;

/// <summary>
/// The test assembly's entry point, used only as a child process by tests that need several processes
/// (<c>dotnet OllamaContinuity.Engine.Tests.dll contingency-writer DIR ID COUNT</c>). The test runner never calls it.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 2 && args[0] == "hostile-stream")
        {
            // A hostile cloud stream (endless line or gzip bomb); prints this process's peak RSS.
            return Failover.ResponseLimitsTests.HostileChildAsync(args[1]).GetAwaiter().GetResult();
        }

        if (args.Length == 4 && args[0] == "contingency-writer")
        {
            // Enables COUNT workflows w-ID-j and disables the odd ones again, each change its own locked write.
            var service = new ContingencyService(pathOf: _ => Path.Combine(args[1], "contingency.json"));
            var count = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
            for (var j = 0; j < count; j++)
            {
                service.Enable(ContinuityScope.User, [$"w-{args[2]}-{j}"], "stress " + args[2], null, false);
                if (j % 2 == 1)
                {
                    service.Disable(ContinuityScope.User, [$"w-{args[2]}-{j}"]);
                }
            }

            return 0;
        }

        if (args.Length == 5 && args[0] == "firewall-drill")
        {
            return Drill.DrillSignalTests.ChildMain(args[1..]);
        }

        Console.Error.WriteLine("usage: contingency-writer DIR ID COUNT | hostile-stream endless|gzip | firewall-drill CLOUD-URL OLLAMA-URL MARKER FIREWALL");
        return 2;
    }
}
