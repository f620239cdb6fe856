using System.Management.Automation;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Commands;

/// <summary>
/// <para type="synopsis">Shows the local failover gateway: address, PID, health, request and failover counts, circuits.</para>
/// </summary>
[Cmdlet(VerbsCommon.Get, "AiGateway")]
[OutputType("OllamaContinuity.Gateway.GatewayStatus")]
public sealed class GetAiGatewayCommand : AsyncCmdlet
{
    protected override void EndProcessing()
    {
        var status = RunAsync(Bridge.ReadAsync);
        if (status is null)
        {
            this.Narrate("No gateway has been started by this user (no state file); start one with Start-AiGateway.");
            return;
        }

        WriteObject(status);
    }

    private static class Bridge
    {
        public static async Task<object?> ReadAsync(CancellationToken ct)
        {
            if (OllamaContinuity.Gateway.GatewayControl.Read() is not { } status)
            {
                return null;
            }

            return await OllamaContinuity.Gateway.GatewayControl.QueryAsync(status,
                OllamaContinuity.Gateway.GatewayControl.FirstToken(status.TokensFile), ct).ConfigureAwait(false);
        }
    }
}
