using OllamaContinuity.Failover;


namespace OllamaContinuity.Gateway;

/// <summary>The gateway process: parse, refuse unsafe settings, serve until SIGTERM / Ctrl+C. Prints "LISTENING &lt;url&gt;" once ready.</summary>
internal static class GatewayProgram
{
    /// <summary>The runtime's switch for running socket completions on its epoll threads (see <see cref="GatewayOptions.InlineIo"/>).</summary>
    internal const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static async Task<int> Main(string[] args)
    {
        GatewayOptions options;
        ClientTokens tokens;
        BackendPlan plan;
        try
        {
            if (args.Contains("--help") || args.Contains("-h"))
            {
                Console.WriteLine(GatewayOptions.Usage);
                return 0;
            }

            options = GatewayOptions.Parse(args);
            if (options.InlineIo && Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
            {
                // Read once, when the runtime's socket engine starts: before the first socket of this process.
                Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
            }

            tokens = options.LoadTokens(Console.OpenStandardInput);
            options.Validate(tokens);
            plan = BackendSettings.FromEnvironment(options.Settings(Environment.GetEnvironmentVariable), options.LogPath);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine("OllamaContinuity.Gateway: " + e.Message);
            Console.Error.WriteLine(GatewayOptions.Usage);
            return 2;
        }

        if (options.ConsoleLogFile is { } consoleLog)
        {
            // Started detached (Start-AiGateway): everything the process prints goes to this file, never to a closed pipe.
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(consoleLog))!);
            var writer = new StreamWriter(new FileStream(consoleLog, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            Console.SetOut(writer);
            Console.SetError(writer);
        }

        // The session engine: persisted per-workflow contingency, the contingency log and alerts, as Invoke-AiRequest has.
        // The owner-only control socket beside the state file (Get-AiGateway reads the counts over it without a token).
        var controlSocket = ControlSocket.PathFor(options.StateFile, out var noSocket);
        if (noSocket is not null)
        {
            Console.Error.WriteLine("OllamaContinuity.Gateway: " + noSocket);
        }

        var app = GatewayApp.Build(options, tokens, FailoverEngine.Shared, plan, LogLevel.Warning, controlSocket);
        try
        {
            await app.StartAsync().ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"OllamaContinuity.Gateway: cannot listen on {options.Bind}:{options.Port}: {e.Message}");
            return 3;
        }

        var uri = GatewayApp.ListeningUri(app);
        if (options.StateFile is { } stateFile)
        {
            GatewayApp.WriteStateFile(stateFile, uri, options, controlSocket);
            app.Lifetime.ApplicationStopping.Register(() =>
            {
                try
                {
                    File.Delete(stateFile);
                }
                catch (IOException)
                {
                }
            });
        }

        Console.WriteLine($"LISTENING {uri.ToString().TrimEnd('/')}");
        Console.Out.Flush();
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        return 0;
    }
}
