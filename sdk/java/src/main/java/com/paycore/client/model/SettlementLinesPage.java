package com.paycore.client.model;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.List;

@JsonIgnoreProperties(ignoreUnknown = true)
public record SettlementLinesPage(@JsonProperty("lines") List<SettlementLine> lines,
                                  @JsonProperty("next_cursor") String nextCursor) {
    public SettlementLinesPage {
        lines = Models.list(lines);
    }
}
