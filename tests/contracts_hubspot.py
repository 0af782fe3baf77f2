"""HubSpot's public API specification, the part the connector uses: facts for tests/test_contracts_hubspot.py.

Extracted from HubSpot/HubSpot-public-api-spec-collection at commit 99893791383254f52aa07662baeb98aad65cc710
(the OpenAPI 3.0.1 files named in "sources"): for each operation the connector calls, its parameters, request body and
responses, and every component schema reachable from them (renamed "<file>.<Schema>" so that the files' same-named
schemas do not clash; the "default" response is HubSpot's Error). Descriptions and examples are dropped; everything
else is as HubSpot publishes it. To refresh: take the same operations from a newer commit of the collection.
"""

import json
from typing import Any

SPEC_REPOSITORY = "HubSpot/HubSpot-public-api-spec-collection"
SPEC_COMMIT = "99893791383254f52aa07662baeb98aad65cc710"

_FACTS = r"""
{
 "operations": [
  {
   "method": "GET",
   "parameters": [
    {
     "in": "path",
     "name": "objectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "after",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "archived",
     "required": false,
     "schema": {
      "default": false,
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "associations",
     "required": false,
     "schema": {
      "items": {
       "type": "string"
      },
      "type": "array"
     }
    },
    {
     "in": "query",
     "name": "limit",
     "required": false,
     "schema": {
      "default": 10,
      "format": "int32",
      "type": "integer"
     }
    },
    {
     "in": "query",
     "name": "properties",
     "required": false,
     "schema": {
      "items": {
       "type": "string"
      },
      "type": "array"
     }
    },
    {
     "in": "query",
     "name": "propertiesWithHistory",
     "required": false,
     "schema": {
      "items": {
       "type": "string"
      },
      "type": "array"
     }
    }
   ],
   "path": "/crm/v3/objects/{objectType}",
   "request": null,
   "responses": {
    "200": {
     "$ref": "objects.CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"
    },
    "default": {
     "$ref": "objects.Error"
    }
   },
   "spec": "objects"
  },
  {
   "method": "POST",
   "parameters": [
    {
     "in": "path",
     "name": "objectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "archived",
     "required": false,
     "schema": {
      "default": false,
      "type": "boolean"
     }
    }
   ],
   "path": "/crm/v3/objects/{objectType}/batch/read",
   "request": {
    "$ref": "objects.BatchReadInputSimplePublicObjectId"
   },
   "responses": {
    "200": {
     "$ref": "objects.BatchResponseSimplePublicObject"
    },
    "207": {
     "$ref": "objects.BatchResponseSimplePublicObjectWithErrors"
    },
    "default": {
     "$ref": "objects.Error"
    }
   },
   "spec": "objects"
  },
  {
   "method": "POST",
   "parameters": [
    {
     "in": "path",
     "name": "objectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    }
   ],
   "path": "/crm/v3/objects/{objectType}/search",
   "request": {
    "$ref": "objects.PublicObjectSearchRequest"
   },
   "responses": {
    "200": {
     "$ref": "objects.CollectionResponseWithTotalSimplePublicObject"
    },
    "default": {
     "$ref": "objects.Error"
    }
   },
   "spec": "objects"
  },
  {
   "method": "POST",
   "parameters": [
    {
     "in": "path",
     "name": "fromObjectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "path",
     "name": "toObjectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    }
   ],
   "path": "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read",
   "request": {
    "$ref": "associations.BatchInputPublicFetchAssociationsBatchRequest"
   },
   "responses": {
    "200": {
     "$ref": "associations.BatchResponsePublicAssociationMultiWithLabel"
    },
    "207": {
     "$ref": "associations.BatchResponsePublicAssociationMultiWithLabelWithErrors"
    },
    "default": {
     "$ref": "associations.Error"
    }
   },
   "spec": "associations"
  },
  {
   "method": "GET",
   "parameters": [
    {
     "in": "query",
     "name": "after",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "archived",
     "required": false,
     "schema": {
      "default": false,
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "email",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "limit",
     "required": false,
     "schema": {
      "default": 100,
      "format": "int32",
      "type": "integer"
     }
    }
   ],
   "path": "/crm/v3/owners",
   "request": null,
   "responses": {
    "200": {
     "$ref": "owners.CollectionResponsePublicOwnerForwardPaging"
    },
    "default": {
     "$ref": "owners.Error"
    }
   },
   "spec": "owners"
  },
  {
   "method": "GET",
   "parameters": [
    {
     "in": "path",
     "name": "objectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    }
   ],
   "path": "/crm/v3/pipelines/{objectType}",
   "request": null,
   "responses": {
    "200": {
     "$ref": "pipelines.CollectionResponsePipelineNoPaging"
    },
    "default": {
     "$ref": "pipelines.Error"
    }
   },
   "spec": "pipelines"
  },
  {
   "method": "GET",
   "parameters": [
    {
     "in": "path",
     "name": "objectType",
     "required": true,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "archived",
     "required": false,
     "schema": {
      "default": false,
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "dataSensitivity",
     "required": false,
     "schema": {
      "default": "non_sensitive",
      "enum": [
       "highly_sensitive",
       "non_sensitive",
       "sensitive"
      ],
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "locale",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "properties",
     "required": false,
     "schema": {
      "type": "string"
     }
    }
   ],
   "path": "/crm/v3/properties/{objectType}",
   "request": null,
   "responses": {
    "200": {
     "$ref": "properties.CollectionResponsePropertyNoPaging"
    },
    "default": {
     "$ref": "properties.Error"
    }
   },
   "spec": "properties"
  },
  {
   "method": "GET",
   "parameters": [
    {
     "in": "query",
     "name": "after",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "archived",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "campaign",
     "required": false,
     "schema": {
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "createdAfter",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "createdAt",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "createdBefore",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "includedProperties",
     "required": false,
     "schema": {
      "items": {
       "type": "string"
      },
      "type": "array"
     }
    },
    {
     "in": "query",
     "name": "includeStats",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "isPublished",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "limit",
     "required": false,
     "schema": {
      "format": "int32",
      "type": "integer"
     }
    },
    {
     "in": "query",
     "name": "marketingCampaignNames",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "publishedAfter",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "publishedAt",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "publishedBefore",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "sort",
     "required": false,
     "schema": {
      "items": {
       "type": "string"
      },
      "type": "array"
     }
    },
    {
     "in": "query",
     "name": "type",
     "required": false,
     "schema": {
      "enum": [
       "AB_EMAIL",
       "AUTOMATED_AB_EMAIL",
       "AUTOMATED_EMAIL",
       "BATCH_EMAIL",
       "BLOG_EMAIL",
       "BLOG_EMAIL_CHILD",
       "FEEDBACK_CES_EMAIL",
       "FEEDBACK_CUSTOM_EMAIL",
       "FEEDBACK_CUSTOM_SURVEY_EMAIL",
       "FEEDBACK_NPS_EMAIL",
       "FOLLOWUP_EMAIL",
       "LEADFLOW_EMAIL",
       "LOCALTIME_EMAIL",
       "MANAGE_PREFERENCES_EMAIL",
       "MARKETING_SINGLE_SEND_API",
       "MEMBERSHIP_EMAIL_VERIFICATION_EMAIL",
       "MEMBERSHIP_FOLLOW_UP_EMAIL",
       "MEMBERSHIP_OTP_LOGIN_EMAIL",
       "MEMBERSHIP_PASSWORD_RESET_EMAIL",
       "MEMBERSHIP_PASSWORD_SAVED_EMAIL",
       "MEMBERSHIP_PASSWORDLESS_AUTH_EMAIL",
       "MEMBERSHIP_REGISTRATION_EMAIL",
       "MEMBERSHIP_REGISTRATION_FOLLOW_UP_EMAIL",
       "MEMBERSHIP_VERIFICATION_EMAIL",
       "OPTIN_EMAIL",
       "OPTIN_FOLLOWUP_EMAIL",
       "RESUBSCRIBE_EMAIL",
       "RSS_EMAIL",
       "RSS_EMAIL_CHILD",
       "SINGLE_SEND_API",
       "SMTP_TOKEN",
       "TICKET_EMAIL"
      ],
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "updatedAfter",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "updatedAt",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "updatedBefore",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "variantStats",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    },
    {
     "in": "query",
     "name": "workflowNames",
     "required": false,
     "schema": {
      "type": "boolean"
     }
    }
   ],
   "path": "/marketing/v3/emails",
   "request": null,
   "responses": {
    "200": {
     "$ref": "emails.CollectionResponseWithTotalPublicEmail"
    },
    "default": {
     "$ref": "emails.Error"
    }
   },
   "spec": "emails"
  },
  {
   "method": "GET",
   "parameters": [
    {
     "in": "query",
     "name": "emailIds",
     "required": false,
     "schema": {
      "items": {
       "format": "int64",
       "type": "integer"
      },
      "type": "array"
     }
    },
    {
     "in": "query",
     "name": "endTimestamp",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "interval",
     "required": false,
     "schema": {
      "enum": [
       "DAY",
       "HOUR",
       "MINUTE",
       "MONTH",
       "QUARTER",
       "QUARTER_HOUR",
       "SECOND",
       "WEEK",
       "YEAR"
      ],
      "type": "string"
     }
    },
    {
     "in": "query",
     "name": "startTimestamp",
     "required": false,
     "schema": {
      "format": "date-time",
      "type": "string"
     }
    }
   ],
   "path": "/marketing/v3/emails/statistics/histogram",
   "request": null,
   "responses": {
    "200": {
     "$ref": "emails.CollectionResponseWithTotalEmailStatisticInterval"
    },
    "default": {
     "$ref": "emails.Error"
    }
   },
   "spec": "emails"
  },
  {
   "method": "GET",
   "parameters": [],
   "path": "/account-info/v3/details",
   "request": null,
   "responses": {
    "200": {
     "$ref": "account.PortalInformationResponse"
    },
    "default": {
     "$ref": "account.Error"
    }
   },
   "spec": "account"
  }
 ],
 "schemas": {
  "account.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "account.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "account.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "account.PortalInformationResponse": {
   "properties": {
    "accountType": {
     "enum": [
      "APP_DEVELOPER",
      "DEVELOPER_TEST",
      "SANDBOX",
      "STANDARD"
     ],
     "type": "string"
    },
    "additionalCurrencies": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "companyCurrency": {
     "type": "string"
    },
    "dataHostingLocation": {
     "type": "string"
    },
    "portalId": {
     "format": "int32",
     "type": "integer"
    },
    "timeZone": {
     "type": "string"
    },
    "uiDomain": {
     "type": "string"
    },
    "utcOffset": {
     "type": "string"
    },
    "utcOffsetMilliseconds": {
     "format": "int64",
     "type": "integer"
    }
   },
   "required": [
    "accountType",
    "additionalCurrencies",
    "companyCurrency",
    "dataHostingLocation",
    "portalId",
    "timeZone",
    "uiDomain",
    "utcOffset",
    "utcOffsetMilliseconds"
   ],
   "type": "object"
  },
  "associations.AssociationSpecWithLabel": {
   "properties": {
    "category": {
     "enum": [
      "HUBSPOT_DEFINED",
      "INTEGRATOR_DEFINED",
      "USER_DEFINED",
      "WORK"
     ],
     "type": "string"
    },
    "fromObjectTypeId": {
     "type": "string"
    },
    "label": {
     "type": "string"
    },
    "toObjectTypeId": {
     "type": "string"
    },
    "typeId": {
     "format": "int32",
     "type": "integer"
    }
   },
   "required": [
    "category",
    "typeId"
   ],
   "type": "object"
  },
  "associations.BatchInputPublicFetchAssociationsBatchRequest": {
   "properties": {
    "inputs": {
     "items": {
      "$ref": "associations.PublicFetchAssociationsBatchRequest"
     },
     "type": "array"
    }
   },
   "required": [
    "inputs"
   ],
   "type": "object"
  },
  "associations.BatchResponsePublicAssociationMultiWithLabel": {
   "properties": {
    "completedAt": {
     "format": "date-time",
     "type": "string"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "requestedAt": {
     "format": "date-time",
     "type": "string"
    },
    "results": {
     "items": {
      "$ref": "associations.PublicAssociationMultiWithLabel"
     },
     "type": "array"
    },
    "startedAt": {
     "format": "date-time",
     "type": "string"
    },
    "status": {
     "enum": [
      "CANCELED",
      "COMPLETE",
      "PENDING",
      "PROCESSING"
     ],
     "type": "string"
    }
   },
   "required": [
    "completedAt",
    "results",
    "startedAt",
    "status"
   ],
   "type": "object"
  },
  "associations.BatchResponsePublicAssociationMultiWithLabelWithErrors": {
   "properties": {
    "completedAt": {
     "format": "date-time",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "associations.StandardError"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "numErrors": {
     "format": "int32",
     "type": "integer"
    },
    "requestedAt": {
     "format": "date-time",
     "type": "string"
    },
    "results": {
     "items": {
      "$ref": "associations.PublicAssociationMultiWithLabel"
     },
     "type": "array"
    },
    "startedAt": {
     "format": "date-time",
     "type": "string"
    },
    "status": {
     "enum": [
      "CANCELED",
      "COMPLETE",
      "PENDING",
      "PROCESSING"
     ],
     "type": "string"
    }
   },
   "required": [
    "completedAt",
    "results",
    "startedAt",
    "status"
   ],
   "type": "object"
  },
  "associations.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "associations.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "associations.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "associations.MultiAssociatedObjectWithLabel": {
   "properties": {
    "associationTypes": {
     "items": {
      "$ref": "associations.AssociationSpecWithLabel"
     },
     "type": "array"
    },
    "toObjectId": {
     "type": "string"
    }
   },
   "required": [
    "associationTypes",
    "toObjectId"
   ],
   "type": "object"
  },
  "associations.NextPage": {
   "properties": {
    "after": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "after"
   ],
   "type": "object"
  },
  "associations.Paging": {
   "properties": {
    "next": {
     "$ref": "associations.NextPage"
    },
    "prev": {
     "$ref": "associations.PreviousPage"
    }
   },
   "type": "object"
  },
  "associations.PreviousPage": {
   "properties": {
    "before": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "before"
   ],
   "type": "object"
  },
  "associations.PublicAssociationMultiWithLabel": {
   "properties": {
    "from": {
     "$ref": "associations.PublicObjectId"
    },
    "paging": {
     "$ref": "associations.Paging"
    },
    "to": {
     "items": {
      "$ref": "associations.MultiAssociatedObjectWithLabel"
     },
     "type": "array"
    }
   },
   "required": [
    "from",
    "to"
   ],
   "type": "object"
  },
  "associations.PublicFetchAssociationsBatchRequest": {
   "properties": {
    "after": {
     "type": "string"
    },
    "id": {
     "type": "string"
    }
   },
   "required": [
    "id"
   ],
   "type": "object"
  },
  "associations.PublicObjectId": {
   "properties": {
    "id": {
     "type": "string"
    }
   },
   "required": [
    "id"
   ],
   "type": "object"
  },
  "associations.StandardError": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "errors": {
     "items": {
      "$ref": "associations.ErrorDetail"
     },
     "type": "array"
    },
    "id": {
     "type": "string"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "status": {
     "type": "string"
    },
    "subCategory": {
     "properties": {},
     "type": "object"
    }
   },
   "required": [
    "category",
    "context",
    "errors",
    "links",
    "message",
    "status"
   ],
   "type": "object"
  },
  "emails.CollectionResponseWithTotalEmailStatisticInterval": {
   "properties": {
    "paging": {
     "$ref": "emails.Paging"
    },
    "results": {
     "items": {
      "$ref": "emails.EmailStatisticInterval"
     },
     "type": "array"
    },
    "total": {
     "format": "int32",
     "type": "integer"
    }
   },
   "required": [
    "results",
    "total"
   ],
   "type": "object"
  },
  "emails.CollectionResponseWithTotalPublicEmail": {
   "properties": {
    "paging": {
     "$ref": "emails.Paging"
    },
    "results": {
     "items": {
      "$ref": "emails.PublicEmail"
     },
     "type": "array"
    },
    "total": {
     "format": "int32",
     "type": "integer"
    }
   },
   "required": [
    "results",
    "total"
   ],
   "type": "object"
  },
  "emails.EmailStatisticInterval": {
   "properties": {
    "aggregations": {
     "$ref": "emails.EmailStatisticsData"
    },
    "interval": {
     "$ref": "emails.Interval"
    }
   },
   "required": [
    "aggregations",
    "interval"
   ],
   "type": "object"
  },
  "emails.EmailStatisticsData": {
   "properties": {
    "counters": {
     "additionalProperties": {
      "format": "int64",
      "type": "integer"
     },
     "type": "object"
    },
    "deviceBreakdown": {
     "additionalProperties": {
      "additionalProperties": {
       "format": "int64",
       "type": "integer"
      },
      "type": "object"
     },
     "type": "object"
    },
    "qualifierStats": {
     "additionalProperties": {
      "additionalProperties": {
       "format": "int64",
       "type": "integer"
      },
      "type": "object"
     },
     "type": "object"
    },
    "ratios": {
     "additionalProperties": {
      "type": "number"
     },
     "type": "object"
    }
   },
   "required": [
    "counters",
    "deviceBreakdown",
    "qualifierStats",
    "ratios"
   ],
   "type": "object"
  },
  "emails.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "emails.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "emails.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "emails.Interval": {
   "properties": {
    "end": {
     "format": "date-time",
     "type": "string"
    },
    "start": {
     "format": "date-time",
     "type": "string"
    }
   },
   "required": [
    "end",
    "start"
   ],
   "type": "object"
  },
  "emails.NextPage": {
   "properties": {
    "after": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "after"
   ],
   "type": "object"
  },
  "emails.Paging": {
   "properties": {
    "next": {
     "$ref": "emails.NextPage"
    },
    "prev": {
     "$ref": "emails.PreviousPage"
    }
   },
   "type": "object"
  },
  "emails.PreviousPage": {
   "properties": {
    "before": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "before"
   ],
   "type": "object"
  },
  "emails.PublicButtonStyleSettings": {
   "properties": {
    "backgroundColor": {
     "properties": {},
     "type": "object"
    },
    "cornerRadius": {
     "format": "int32",
     "type": "integer"
    },
    "fontStyle": {
     "$ref": "emails.PublicFontStyle"
    }
   },
   "type": "object"
  },
  "emails.PublicDividerStyleSettings": {
   "properties": {
    "color": {
     "properties": {},
     "type": "object"
    },
    "height": {
     "format": "int32",
     "type": "integer"
    },
    "lineType": {
     "type": "string"
    }
   },
   "type": "object"
  },
  "emails.PublicEmail": {
   "properties": {
    "activeDomain": {
     "type": "string"
    },
    "allEmailCampaignIds": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "archived": {
     "type": "boolean"
    },
    "businessUnitId": {
     "type": "string"
    },
    "campaign": {
     "type": "string"
    },
    "campaignName": {
     "type": "string"
    },
    "campaignUtm": {
     "type": "string"
    },
    "clonedFrom": {
     "type": "string"
    },
    "content": {
     "$ref": "emails.PublicEmailContent"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "createdById": {
     "type": "string"
    },
    "deletedAt": {
     "format": "date-time",
     "type": "string"
    },
    "emailCampaignGroupId": {
     "type": "string"
    },
    "emailTemplateMode": {
     "enum": [
      "DESIGN_MANAGER",
      "DRAG_AND_DROP"
     ],
     "type": "string"
    },
    "feedbackSurveyId": {
     "type": "string"
    },
    "folderId": {
     "format": "int64",
     "type": "integer"
    },
    "folderIdV2": {
     "format": "int64",
     "type": "integer"
    },
    "from": {
     "$ref": "emails.PublicEmailFromDetails"
    },
    "id": {
     "type": "string"
    },
    "isAb": {
     "type": "boolean"
    },
    "isPublished": {
     "type": "boolean"
    },
    "isTransactional": {
     "type": "boolean"
    },
    "jitterSendTime": {
     "type": "boolean"
    },
    "language": {
     "enum": [
      "aa",
      "ab",
      "ae",
      "af",
      "af-na",
      "af-za",
      "agq",
      "agq-cm",
      "ak",
      "ak-gh",
      "am",
      "am-et",
      "an",
      "ann",
      "ann-ng",
      "ar",
      "ar-001",
      "ar-ae",
      "ar-bh",
      "ar-dj",
      "ar-dz",
      "ar-eg",
      "ar-eh",
      "ar-er",
      "ar-il",
      "ar-iq",
      "ar-jo",
      "ar-km",
      "ar-kw",
      "ar-lb",
      "ar-ly",
      "ar-ma",
      "ar-mr",
      "ar-om",
      "ar-ps",
      "ar-qa",
      "ar-sa",
      "ar-sd",
      "ar-so",
      "ar-ss",
      "ar-sy",
      "ar-td",
      "ar-tn",
      "ar-ye",
      "as",
      "as-in",
      "asa",
      "asa-tz",
      "ast",
      "ast-es",
      "av",
      "ay",
      "az",
      "az-az",
      "ba",
      "bal",
      "bal-pk",
      "bas",
      "bas-cm",
      "be",
      "be-by",
      "bem",
      "bem-zm",
      "bez",
      "bez-tz",
      "bg",
      "bg-bg",
      "bgc",
      "bgc-in",
      "bho",
      "bho-in",
      "bi",
      "blo",
      "blo-bj",
      "bm",
      "bm-ml",
      "bn",
      "bn-bd",
      "bn-in",
      "bo",
      "bo-cn",
      "bo-in",
      "br",
      "br-fr",
      "brx",
      "brx-in",
      "bs",
      "bs-ba",
      "ca",
      "ca-ad",
      "ca-es",
      "ca-fr",
      "ca-it",
      "ccp",
      "ccp-bd",
      "ccp-in",
      "ce",
      "ce-ru",
      "ceb",
      "ceb-ph",
      "cgg",
      "cgg-ug",
      "ch",
      "chr",
      "chr-us",
      "ckb",
      "ckb-iq",
      "ckb-ir",
      "co",
      "cr",
      "cs",
      "cs-cz",
      "csw",
      "csw-ca",
      "cu",
      "cu-ru",
      "cv",
      "cv-ru",
      "cy",
      "cy-gb",
      "da",
      "da-dk",
      "da-gl",
      "dav",
      "dav-ke",
      "de",
      "de-at",
      "de-be",
      "de-ch",
      "de-de",
      "de-gr",
      "de-it",
      "de-li",
      "de-lu",
      "dje",
      "dje-ne",
      "doi",
      "doi-in",
      "dsb",
      "dsb-de",
      "dua",
      "dua-cm",
      "dv",
      "dyo",
      "dyo-sn",
      "dz",
      "dz-bt",
      "ebu",
      "ebu-ke",
      "ee",
      "ee-gh",
      "ee-tg",
      "el",
      "el-cy",
      "el-gr",
      "en",
      "en-001",
      "en-150",
      "en-ae",
      "en-ag",
      "en-ai",
      "en-as",
      "en-at",
      "en-au",
      "en-bb",
      "en-be",
      "en-bi",
      "en-bm",
      "en-bs",
      "en-bw",
      "en-bz",
      "en-ca",
      "en-cc",
      "en-ch",
      "en-ck",
      "en-cm",
      "en-cn",
      "en-cx",
      "en-cy",
      "en-cz",
      "en-de",
      "en-dg",
      "en-dk",
      "en-dm",
      "en-ee",
      "en-eg",
      "en-er",
      "en-es",
      "en-fi",
      "en-fj",
      "en-fk",
      "en-fm",
      "en-fr",
      "en-gb",
      "en-gd",
      "en-gg",
      "en-gh",
      "en-gi",
      "en-gm",
      "en-gs",
      "en-gu",
      "en-gy",
      "en-hk",
      "en-hu",
      "en-id",
      "en-ie",
      "en-il",
      "en-im",
      "en-in",
      "en-io",
      "en-it",
      "en-je",
      "en-jm",
      "en-ke",
      "en-ki",
      "en-kn",
      "en-ky",
      "en-lc",
      "en-lr",
      "en-ls",
      "en-lu",
      "en-mg",
      "en-mh",
      "en-mo",
      "en-mp",
      "en-ms",
      "en-mt",
      "en-mu",
      "en-mv",
      "en-mw",
      "en-mx",
      "en-my",
      "en-na",
      "en-nf",
      "en-ng",
      "en-nl",
      "en-no",
      "en-nr",
      "en-nu",
      "en-nz",
      "en-pg",
      "en-ph",
      "en-pk",
      "en-pl",
      "en-pn",
      "en-pr",
      "en-pt",
      "en-pw",
      "en-ro",
      "en-rw",
      "en-sb",
      "en-sc",
      "en-sd",
      "en-se",
      "en-sg",
      "en-sh",
      "en-si",
      "en-sk",
      "en-sl",
      "en-ss",
      "en-sx",
      "en-sz",
      "en-tc",
      "en-th",
      "en-tk",
      "en-tn",
      "en-to",
      "en-tt",
      "en-tv",
      "en-tz",
      "en-ug",
      "en-um",
      "en-us",
      "en-vc",
      "en-vg",
      "en-vi",
      "en-vn",
      "en-vu",
      "en-ws",
      "en-za",
      "en-zm",
      "en-zw",
      "eo",
      "eo-001",
      "es",
      "es-419",
      "es-ar",
      "es-bo",
      "es-br",
      "es-bz",
      "es-cl",
      "es-co",
      "es-cr",
      "es-cu",
      "es-do",
      "es-ea",
      "es-ec",
      "es-es",
      "es-gq",
      "es-gt",
      "es-hn",
      "es-ic",
      "es-mx",
      "es-ni",
      "es-pa",
      "es-pe",
      "es-ph",
      "es-pr",
      "es-py",
      "es-sv",
      "es-us",
      "es-uy",
      "es-ve",
      "et",
      "et-ee",
      "eu",
      "eu-es",
      "ewo",
      "ewo-cm",
      "fa",
      "fa-af",
      "fa-ir",
      "ff",
      "ff-bf",
      "ff-cm",
      "ff-gh",
      "ff-gm",
      "ff-gn",
      "ff-gw",
      "ff-lr",
      "ff-mr",
      "ff-ne",
      "ff-ng",
      "ff-sl",
      "ff-sn",
      "fi",
      "fi-fi",
      "fil",
      "fil-ph",
      "fj",
      "fo",
      "fo-dk",
      "fo-fo",
      "fr",
      "fr-be",
      "fr-bf",
      "fr-bi",
      "fr-bj",
      "fr-bl",
      "fr-ca",
      "fr-cd",
      "fr-cf",
      "fr-cg",
      "fr-ch",
      "fr-ci",
      "fr-cm",
      "fr-dj",
      "fr-dz",
      "fr-fr",
      "fr-ga",
      "fr-gf",
      "fr-gn",
      "fr-gp",
      "fr-gq",
      "fr-ht",
      "fr-km",
      "fr-lu",
      "fr-ma",
      "fr-mc",
      "fr-mf",
      "fr-mg",
      "fr-ml",
      "fr-mq",
      "fr-mr",
      "fr-mu",
      "fr-nc",
      "fr-ne",
      "fr-pf",
      "fr-pm",
      "fr-re",
      "fr-rw",
      "fr-sc",
      "fr-sn",
      "fr-sy",
      "fr-td",
      "fr-tg",
      "fr-tn",
      "fr-vu",
      "fr-wf",
      "fr-yt",
      "frr",
      "frr-de",
      "fur",
      "fur-it",
      "fy",
      "fy-nl",
      "ga",
      "ga-gb",
      "ga-ie",
      "gaa",
      "gaa-gh",
      "gd",
      "gd-gb",
      "gl",
      "gl-es",
      "gn",
      "gsw",
      "gsw-ch",
      "gsw-fr",
      "gsw-li",
      "gu",
      "gu-in",
      "guz",
      "guz-ke",
      "gv",
      "gv-im",
      "ha",
      "ha-gh",
      "ha-ne",
      "ha-ng",
      "haw",
      "haw-us",
      "he",
      "he-il",
      "hi",
      "hi-in",
      "hmn",
      "ho",
      "hr",
      "hr-ba",
      "hr-hr",
      "hsb",
      "hsb-de",
      "ht",
      "ht-ht",
      "hu",
      "hu-hu",
      "hy",
      "hy-am",
      "hz",
      "ia",
      "ia-001",
      "id",
      "id-id",
      "ie",
      "ie-ee",
      "ig",
      "ig-ng",
      "ii",
      "ii-cn",
      "ik",
      "io",
      "is",
      "is-is",
      "it",
      "it-ch",
      "it-it",
      "it-sm",
      "it-va",
      "iu",
      "ja",
      "ja-jp",
      "jgo",
      "jgo-cm",
      "jmc",
      "jmc-tz",
      "jv",
      "jv-id",
      "ka",
      "ka-ge",
      "kab",
      "kab-dz",
      "kam",
      "kam-ke",
      "kar",
      "kde",
      "kde-tz",
      "kea",
      "kea-cv",
      "kg",
      "kgp",
      "kgp-br",
      "kh",
      "khq",
      "khq-ml",
      "ki",
      "ki-ke",
      "kj",
      "kk",
      "kk-kz",
      "kkj",
      "kkj-cm",
      "kl",
      "kl-gl",
      "kln",
      "kln-ke",
      "km",
      "km-kh",
      "kn",
      "kn-in",
      "ko",
      "ko-cn",
      "ko-kp",
      "ko-kr",
      "kok",
      "kok-in",
      "kr",
      "ks",
      "ks-in",
      "ksb",
      "ksb-tz",
      "ksf",
      "ksf-cm",
      "ksh",
      "ksh-de",
      "ku",
      "ku-tr",
      "kv",
      "kw",
      "kw-gb",
      "kxv",
      "kxv-in",
      "ky",
      "ky-kg",
      "la",
      "lag",
      "lag-tz",
      "lb",
      "lb-lu",
      "lg",
      "lg-ug",
      "li",
      "lij",
      "lij-it",
      "lkt",
      "lkt-us",
      "lmo",
      "lmo-it",
      "ln",
      "ln-ao",
      "ln-cd",
      "ln-cf",
      "ln-cg",
      "lo",
      "lo-la",
      "lrc",
      "lrc-iq",
      "lrc-ir",
      "lt",
      "lt-lt",
      "lu",
      "lu-cd",
      "luo",
      "luo-ke",
      "luy",
      "luy-ke",
      "lv",
      "lv-lv",
      "mai",
      "mai-in",
      "mas",
      "mas-ke",
      "mas-tz",
      "mdf",
      "mdf-ru",
      "mer",
      "mer-ke",
      "mfe",
      "mfe-mu",
      "mg",
      "mg-mg",
      "mgh",
      "mgh-mz",
      "mgo",
      "mgo-cm",
      "mh",
      "mi",
      "mi-nz",
      "mk",
      "mk-mk",
      "ml",
      "ml-in",
      "mn",
      "mn-mn",
      "mni",
      "mni-in",
      "mr",
      "mr-in",
      "ms",
      "ms-bn",
      "ms-id",
      "ms-my",
      "ms-sg",
      "mt",
      "mt-mt",
      "mua",
      "mua-cm",
      "my",
      "my-mm",
      "mzn",
      "mzn-ir",
      "na",
      "naq",
      "naq-na",
      "nb",
      "nb-no",
      "nb-sj",
      "nd",
      "nd-zw",
      "nds",
      "nds-de",
      "nds-nl",
      "ne",
      "ne-in",
      "ne-np",
      "ng",
      "nl",
      "nl-aw",
      "nl-be",
      "nl-bq",
      "nl-ch",
      "nl-cw",
      "nl-lu",
      "nl-nl",
      "nl-sr",
      "nl-sx",
      "nmg",
      "nmg-cm",
      "nn",
      "nn-no",
      "nnh",
      "nnh-cm",
      "no",
      "no-no",
      "nqo",
      "nqo-gn",
      "nr",
      "nso",
      "nso-za",
      "nus",
      "nus-ss",
      "nv",
      "ny",
      "nyn",
      "nyn-ug",
      "oc",
      "oc-es",
      "oc-fr",
      "oj",
      "om",
      "om-et",
      "om-ke",
      "or",
      "or-in",
      "os",
      "os-ge",
      "os-ru",
      "pa",
      "pa-in",
      "pa-pk",
      "pcm",
      "pcm-ng",
      "pi",
      "pis",
      "pis-sb",
      "pl",
      "pl-pl",
      "prg",
      "prg-001",
      "ps",
      "ps-af",
      "ps-pk",
      "pt",
      "pt-ao",
      "pt-br",
      "pt-ch",
      "pt-cv",
      "pt-gq",
      "pt-gw",
      "pt-lu",
      "pt-mo",
      "pt-mz",
      "pt-pt",
      "pt-st",
      "pt-tl",
      "qu",
      "qu-bo",
      "qu-ec",
      "qu-pe",
      "raj",
      "raj-in",
      "rm",
      "rm-ch",
      "rn",
      "rn-bi",
      "ro",
      "ro-md",
      "ro-ro",
      "rof",
      "rof-tz",
      "ru",
      "ru-by",
      "ru-kg",
      "ru-kz",
      "ru-md",
      "ru-ru",
      "ru-ua",
      "rw",
      "rw-rw",
      "rwk",
      "rwk-tz",
      "sa",
      "sa-in",
      "sah",
      "sah-ru",
      "saq",
      "saq-ke",
      "sat",
      "sat-in",
      "sbp",
      "sbp-tz",
      "sc",
      "sc-it",
      "sd",
      "sd-in",
      "sd-pk",
      "se",
      "se-fi",
      "se-no",
      "se-se",
      "seh",
      "seh-mz",
      "ses",
      "ses-ml",
      "sg",
      "sg-cf",
      "shi",
      "shi-ma",
      "si",
      "si-lk",
      "sk",
      "sk-sk",
      "sl",
      "sl-si",
      "sm",
      "smn",
      "smn-fi",
      "sms",
      "sms-fi",
      "sn",
      "sn-zw",
      "so",
      "so-dj",
      "so-et",
      "so-ke",
      "so-so",
      "sq",
      "sq-al",
      "sq-mk",
      "sq-xk",
      "sr",
      "sr-ba",
      "sr-cs",
      "sr-me",
      "sr-rs",
      "sr-xk",
      "ss",
      "st",
      "st-ls",
      "st-za",
      "su",
      "su-id",
      "sv",
      "sv-ax",
      "sv-fi",
      "sv-se",
      "sw",
      "sw-cd",
      "sw-ke",
      "sw-tz",
      "sw-ug",
      "sy",
      "syr",
      "syr-iq",
      "syr-sy",
      "szl",
      "szl-pl",
      "ta",
      "ta-in",
      "ta-lk",
      "ta-my",
      "ta-sg",
      "te",
      "te-in",
      "teo",
      "teo-ke",
      "teo-ug",
      "tg",
      "tg-tj",
      "th",
      "th-th",
      "ti",
      "ti-er",
      "ti-et",
      "tk",
      "tk-tm",
      "tl",
      "tn",
      "tn-bw",
      "tn-za",
      "to",
      "to-to",
      "tok",
      "tok-001",
      "tr",
      "tr-cy",
      "tr-tr",
      "ts",
      "tt",
      "tt-ru",
      "tw",
      "twq",
      "twq-ne",
      "ty",
      "tzm",
      "tzm-ma",
      "ug",
      "ug-cn",
      "uk",
      "uk-ua",
      "ur",
      "ur-in",
      "ur-pk",
      "uz",
      "uz-af",
      "uz-uz",
      "vai",
      "vai-lr",
      "ve",
      "vec",
      "vec-it",
      "vi",
      "vi-vn",
      "vmw",
      "vmw-mz",
      "vo",
      "vo-001",
      "vun",
      "vun-tz",
      "wa",
      "wae",
      "wae-ch",
      "wo",
      "wo-sn",
      "xh",
      "xh-za",
      "xnr",
      "xnr-in",
      "xog",
      "xog-ug",
      "yav",
      "yav-cm",
      "yi",
      "yi-001",
      "yi-ua",
      "yo",
      "yo-bj",
      "yo-ng",
      "yrl",
      "yrl-br",
      "yrl-co",
      "yrl-ve",
      "yue",
      "yue-cn",
      "yue-hk",
      "yue-mo",
      "za",
      "za-cn",
      "zgh",
      "zgh-ma",
      "zh",
      "zh-cn",
      "zh-hans",
      "zh-hant",
      "zh-hk",
      "zh-mo",
      "zh-my",
      "zh-sg",
      "zh-tw",
      "zu",
      "zu-za"
     ],
     "type": "string"
    },
    "name": {
     "type": "string"
    },
    "previewKey": {
     "type": "string"
    },
    "primaryEmailCampaignId": {
     "type": "string"
    },
    "publishDate": {
     "format": "date-time",
     "type": "string"
    },
    "publishedAt": {
     "format": "date-time",
     "type": "string"
    },
    "publishedByEmail": {
     "type": "string"
    },
    "publishedById": {
     "type": "string"
    },
    "publishedByName": {
     "type": "string"
    },
    "rssData": {
     "$ref": "emails.PublicRssEmailDetails"
    },
    "sendOnPublish": {
     "type": "boolean"
    },
    "state": {
     "enum": [
      "AGENT_GENERATED",
      "AUTOMATED",
      "AUTOMATED_AB",
      "AUTOMATED_AB_VARIANT",
      "AUTOMATED_DRAFT",
      "AUTOMATED_DRAFT_AB",
      "AUTOMATED_DRAFT_ABVARIANT",
      "AUTOMATED_FOR_FORM",
      "AUTOMATED_FOR_FORM_BUFFER",
      "AUTOMATED_FOR_FORM_DRAFT",
      "AUTOMATED_FOR_FORM_LEGACY",
      "AUTOMATED_LOSER_ABVARIANT",
      "AUTOMATED_SENDING",
      "BLOG_EMAIL_DRAFT",
      "BLOG_EMAIL_PUBLISHED",
      "DRAFT",
      "DRAFT_AB",
      "DRAFT_AB_VARIANT",
      "ERROR",
      "LOSER_AB_VARIANT",
      "PAGE_STUB",
      "PRE_PROCESSING",
      "PROCESSING",
      "PUBLISHED",
      "PUBLISHED_AB",
      "PUBLISHED_AB_VARIANT",
      "PUBLISHED_OR_SCHEDULED",
      "RSS_TO_EMAIL_DRAFT",
      "RSS_TO_EMAIL_PUBLISHED",
      "SCHEDULED",
      "SCHEDULED_AB",
      "SCHEDULED_OR_PUBLISHED"
     ],
     "type": "string"
    },
    "stats": {
     "$ref": "emails.EmailStatisticsData"
    },
    "subcategory": {
     "type": "string"
    },
    "subject": {
     "type": "string"
    },
    "subscriptionDetails": {
     "$ref": "emails.PublicEmailSubscriptionDetails"
    },
    "teamsWithAccess": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "testing": {
     "$ref": "emails.PublicEmailTestingDetails"
    },
    "to": {
     "$ref": "emails.PublicEmailToDetails"
    },
    "type": {
     "enum": [
      "AB_EMAIL",
      "AUTOMATED_AB_EMAIL",
      "AUTOMATED_EMAIL",
      "BATCH_EMAIL",
      "BLOG_EMAIL",
      "BLOG_EMAIL_CHILD",
      "FEEDBACK_CES_EMAIL",
      "FEEDBACK_CUSTOM_EMAIL",
      "FEEDBACK_CUSTOM_SURVEY_EMAIL",
      "FEEDBACK_NPS_EMAIL",
      "FOLLOWUP_EMAIL",
      "LEADFLOW_EMAIL",
      "LOCALTIME_EMAIL",
      "MANAGE_PREFERENCES_EMAIL",
      "MARKETING_SINGLE_SEND_API",
      "MEMBERSHIP_EMAIL_VERIFICATION_EMAIL",
      "MEMBERSHIP_FOLLOW_UP_EMAIL",
      "MEMBERSHIP_OTP_LOGIN_EMAIL",
      "MEMBERSHIP_PASSWORD_RESET_EMAIL",
      "MEMBERSHIP_PASSWORD_SAVED_EMAIL",
      "MEMBERSHIP_PASSWORDLESS_AUTH_EMAIL",
      "MEMBERSHIP_REGISTRATION_EMAIL",
      "MEMBERSHIP_REGISTRATION_FOLLOW_UP_EMAIL",
      "MEMBERSHIP_VERIFICATION_EMAIL",
      "OPTIN_EMAIL",
      "OPTIN_FOLLOWUP_EMAIL",
      "RESUBSCRIBE_EMAIL",
      "RSS_EMAIL",
      "RSS_EMAIL_CHILD",
      "SINGLE_SEND_API",
      "SMTP_TOKEN",
      "TICKET_EMAIL"
     ],
     "type": "string"
    },
    "unpublishedAt": {
     "format": "date-time",
     "type": "string"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "updatedById": {
     "type": "string"
    },
    "usersWithAccess": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "webversion": {
     "$ref": "emails.PublicWebversionDetails"
    },
    "workflowNames": {
     "items": {
      "type": "string"
     },
     "type": "array"
    }
   },
   "required": [
    "isAb"
   ],
   "type": "object"
  },
  "emails.PublicEmailContent": {
   "properties": {
    "flexAreas": {
     "additionalProperties": {
      "properties": {},
      "type": "object"
     },
     "type": "object"
    },
    "plainTextVersion": {
     "type": "string"
    },
    "smartFields": {
     "additionalProperties": {
      "$ref": "emails.SmartEmailField"
     },
     "type": "object"
    },
    "styleSettings": {
     "$ref": "emails.PublicEmailStyleSettings"
    },
    "templatePath": {
     "type": "string"
    },
    "themeSettingsValues": {
     "additionalProperties": {
      "properties": {},
      "type": "object"
     },
     "type": "object"
    },
    "widgetContainers": {
     "additionalProperties": {
      "properties": {},
      "type": "object"
     },
     "type": "object"
    },
    "widgets": {
     "additionalProperties": {
      "properties": {},
      "type": "object"
     },
     "type": "object"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailFromDetails": {
   "properties": {
    "customReplyTo": {
     "type": "string"
    },
    "fromName": {
     "type": "string"
    },
    "replyTo": {
     "type": "string"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailRecipients": {
   "properties": {
    "exclude": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "include": {
     "items": {
      "type": "string"
     },
     "type": "array"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailStyleSettings": {
   "properties": {
    "backgroundColor": {
     "type": "string"
    },
    "backgroundImage": {
     "type": "string"
    },
    "backgroundImageType": {
     "enum": [
      "REPEAT",
      "SINGLE",
      "STRETCH"
     ],
     "type": "string"
    },
    "bodyBorderColor": {
     "type": "string"
    },
    "bodyBorderColorChoice": {
     "type": "string"
    },
    "bodyBorderWidth": {
     "type": "number"
    },
    "bodyColor": {
     "type": "string"
    },
    "buttonStyleSettings": {
     "$ref": "emails.PublicButtonStyleSettings"
    },
    "colorPickerFavorite1": {
     "type": "string"
    },
    "colorPickerFavorite2": {
     "type": "string"
    },
    "colorPickerFavorite3": {
     "type": "string"
    },
    "colorPickerFavorite4": {
     "type": "string"
    },
    "colorPickerFavorite5": {
     "type": "string"
    },
    "colorPickerFavorite6": {
     "type": "string"
    },
    "dividerStyleSettings": {
     "$ref": "emails.PublicDividerStyleSettings"
    },
    "emailBodyPadding": {
     "type": "string"
    },
    "emailBodyWidth": {
     "type": "string"
    },
    "headingOneFont": {
     "$ref": "emails.PublicFontStyle"
    },
    "headingTwoFont": {
     "$ref": "emails.PublicFontStyle"
    },
    "linksFont": {
     "$ref": "emails.PublicFontStyle"
    },
    "primaryAccentColor": {
     "type": "string"
    },
    "primaryFont": {
     "type": "string"
    },
    "primaryFontColor": {
     "type": "string"
    },
    "primaryFontLineHeight": {
     "type": "string"
    },
    "primaryFontSize": {
     "type": "number"
    },
    "secondaryAccentColor": {
     "type": "string"
    },
    "secondaryFont": {
     "type": "string"
    },
    "secondaryFontColor": {
     "type": "string"
    },
    "secondaryFontLineHeight": {
     "type": "string"
    },
    "secondaryFontSize": {
     "type": "number"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailSubscriptionDetails": {
   "properties": {
    "officeLocationId": {
     "type": "string"
    },
    "preferencesGroupId": {
     "type": "string"
    },
    "subscriptionId": {
     "type": "string"
    },
    "subscriptionName": {
     "type": "string"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailTestingDetails": {
   "properties": {
    "abSampleSizeDefault": {
     "enum": [
      "automated_loser_variant",
      "automated_master",
      "automated_variant",
      "loser_variant",
      "mab_master",
      "mab_variant",
      "master",
      "variant"
     ],
     "type": "string"
    },
    "abSamplingDefault": {
     "enum": [
      "automated_loser_variant",
      "automated_master",
      "automated_variant",
      "loser_variant",
      "mab_master",
      "mab_variant",
      "master",
      "variant"
     ],
     "type": "string"
    },
    "abStatus": {
     "enum": [
      "automated_loser_variant",
      "automated_master",
      "automated_variant",
      "loser_variant",
      "mab_master",
      "mab_variant",
      "master",
      "variant"
     ],
     "type": "string"
    },
    "abSuccessMetric": {
     "enum": [
      "CLICKS_BY_DELIVERED",
      "CLICKS_BY_OPENS",
      "OPENS_BY_DELIVERED"
     ],
     "type": "string"
    },
    "abTestPercentage": {
     "format": "int32",
     "type": "integer"
    },
    "hoursToWait": {
     "format": "int32",
     "type": "integer"
    },
    "isAbVariation": {
     "type": "boolean"
    },
    "testId": {
     "type": "string"
    }
   },
   "type": "object"
  },
  "emails.PublicEmailToDetails": {
   "properties": {
    "contactIds": {
     "$ref": "emails.PublicEmailRecipients"
    },
    "contactIlsLists": {
     "$ref": "emails.PublicEmailRecipients"
    },
    "contactLists": {
     "$ref": "emails.PublicEmailRecipients"
    },
    "limitSendFrequency": {
     "type": "boolean"
    },
    "suppressGraymail": {
     "type": "boolean"
    }
   },
   "type": "object"
  },
  "emails.PublicFontStyle": {
   "properties": {
    "bold": {
     "type": "boolean"
    },
    "color": {
     "type": "string"
    },
    "font": {
     "type": "string"
    },
    "italic": {
     "type": "boolean"
    },
    "size": {
     "format": "int32",
     "type": "integer"
    },
    "underline": {
     "type": "boolean"
    }
   },
   "type": "object"
  },
  "emails.PublicRssEmailDetails": {
   "properties": {
    "blogEmailType": {
     "type": "string"
    },
    "blogImageMaxWidth": {
     "format": "int32",
     "type": "integer"
    },
    "blogLayout": {
     "enum": [
      "FULL_POST",
      "SUMMARY_NO_FEATURED_IMAGE",
      "SUMMARY_WITH_FEATURED_IMAGE"
     ],
     "type": "string"
    },
    "hubspotBlogId": {
     "type": "string"
    },
    "maxEntries": {
     "format": "int32",
     "type": "integer"
    },
    "rssEntryTemplate": {
     "type": "string"
    },
    "timing": {
     "additionalProperties": {
      "properties": {},
      "type": "object"
     },
     "type": "object"
    },
    "url": {
     "type": "string"
    },
    "useHeadlineAsSubject": {
     "type": "boolean"
    }
   },
   "type": "object"
  },
  "emails.PublicWebversionDetails": {
   "properties": {
    "domain": {
     "type": "string"
    },
    "enabled": {
     "type": "boolean"
    },
    "expiresAt": {
     "format": "date-time",
     "type": "string"
    },
    "isPageRedirected": {
     "type": "boolean"
    },
    "metaDescription": {
     "type": "string"
    },
    "pageExpiryEnabled": {
     "type": "boolean"
    },
    "redirectToPageId": {
     "type": "string"
    },
    "redirectToUrl": {
     "type": "string"
    },
    "slug": {
     "type": "string"
    },
    "title": {
     "type": "string"
    },
    "url": {
     "type": "string"
    }
   },
   "type": "object"
  },
  "emails.SmartEmailField": {
   "properties": {},
   "type": "object"
  },
  "objects.AssociatedId": {
   "properties": {
    "id": {
     "type": "string"
    },
    "type": {
     "type": "string"
    }
   },
   "required": [
    "id",
    "type"
   ],
   "type": "object"
  },
  "objects.BatchReadInputSimplePublicObjectId": {
   "properties": {
    "idProperty": {
     "type": "string"
    },
    "inputs": {
     "items": {
      "$ref": "objects.SimplePublicObjectId"
     },
     "type": "array"
    },
    "properties": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "propertiesWithHistory": {
     "items": {
      "type": "string"
     },
     "type": "array"
    }
   },
   "required": [
    "inputs",
    "properties",
    "propertiesWithHistory"
   ],
   "type": "object"
  },
  "objects.BatchResponseSimplePublicObject": {
   "properties": {
    "completedAt": {
     "format": "date-time",
     "type": "string"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "requestedAt": {
     "format": "date-time",
     "type": "string"
    },
    "results": {
     "items": {
      "$ref": "objects.SimplePublicObject"
     },
     "type": "array"
    },
    "startedAt": {
     "format": "date-time",
     "type": "string"
    },
    "status": {
     "enum": [
      "CANCELED",
      "COMPLETE",
      "PENDING",
      "PROCESSING"
     ],
     "type": "string"
    }
   },
   "required": [
    "completedAt",
    "results",
    "startedAt",
    "status"
   ],
   "type": "object"
  },
  "objects.BatchResponseSimplePublicObjectWithErrors": {
   "properties": {
    "completedAt": {
     "format": "date-time",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "objects.StandardError"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "numErrors": {
     "format": "int32",
     "type": "integer"
    },
    "requestedAt": {
     "format": "date-time",
     "type": "string"
    },
    "results": {
     "items": {
      "$ref": "objects.SimplePublicObject"
     },
     "type": "array"
    },
    "startedAt": {
     "format": "date-time",
     "type": "string"
    },
    "status": {
     "enum": [
      "CANCELED",
      "COMPLETE",
      "PENDING",
      "PROCESSING"
     ],
     "type": "string"
    }
   },
   "required": [
    "completedAt",
    "results",
    "startedAt",
    "status"
   ],
   "type": "object"
  },
  "objects.CollectionResponseAssociatedId": {
   "properties": {
    "paging": {
     "$ref": "objects.Paging"
    },
    "results": {
     "items": {
      "$ref": "objects.AssociatedId"
     },
     "type": "array"
    }
   },
   "required": [
    "results"
   ],
   "type": "object"
  },
  "objects.CollectionResponseSimplePublicObjectWithAssociationsForwardPaging": {
   "properties": {
    "paging": {
     "$ref": "objects.ForwardPaging"
    },
    "results": {
     "items": {
      "$ref": "objects.SimplePublicObjectWithAssociations"
     },
     "type": "array"
    }
   },
   "required": [
    "results"
   ],
   "type": "object"
  },
  "objects.CollectionResponseWithTotalSimplePublicObject": {
   "properties": {
    "paging": {
     "$ref": "objects.Paging"
    },
    "results": {
     "items": {
      "$ref": "objects.SimplePublicObject"
     },
     "type": "array"
    },
    "total": {
     "format": "int32",
     "type": "integer"
    }
   },
   "required": [
    "results",
    "total"
   ],
   "type": "object"
  },
  "objects.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "objects.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "objects.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "objects.Filter": {
   "properties": {
    "highValue": {
     "type": "string"
    },
    "operator": {
     "enum": [
      "BETWEEN",
      "CONTAINS_TOKEN",
      "EQ",
      "GT",
      "GTE",
      "HAS_PROPERTY",
      "IN",
      "LT",
      "LTE",
      "NEQ",
      "NOT_CONTAINS_TOKEN",
      "NOT_HAS_PROPERTY",
      "NOT_IN"
     ],
     "type": "string"
    },
    "propertyName": {
     "type": "string"
    },
    "value": {
     "type": "string"
    },
    "values": {
     "items": {
      "type": "string"
     },
     "type": "array"
    }
   },
   "required": [
    "operator",
    "propertyName"
   ],
   "type": "object"
  },
  "objects.FilterGroup": {
   "properties": {
    "filters": {
     "items": {
      "$ref": "objects.Filter"
     },
     "type": "array"
    }
   },
   "required": [
    "filters"
   ],
   "type": "object"
  },
  "objects.ForwardPaging": {
   "properties": {
    "next": {
     "$ref": "objects.NextPage"
    }
   },
   "type": "object"
  },
  "objects.NextPage": {
   "properties": {
    "after": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "after"
   ],
   "type": "object"
  },
  "objects.Paging": {
   "properties": {
    "next": {
     "$ref": "objects.NextPage"
    },
    "prev": {
     "$ref": "objects.PreviousPage"
    }
   },
   "type": "object"
  },
  "objects.PreviousPage": {
   "properties": {
    "before": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "before"
   ],
   "type": "object"
  },
  "objects.PublicObjectSearchRequest": {
   "properties": {
    "after": {
     "type": "string"
    },
    "filterGroups": {
     "items": {
      "$ref": "objects.FilterGroup"
     },
     "type": "array"
    },
    "limit": {
     "format": "int32",
     "type": "integer"
    },
    "properties": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "query": {
     "type": "string"
    },
    "sorts": {
     "items": {
      "type": "string"
     },
     "type": "array"
    }
   },
   "required": [
    "after",
    "filterGroups",
    "limit",
    "properties",
    "sorts"
   ],
   "type": "object"
  },
  "objects.PublicObjectWarning": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "context",
    "message"
   ],
   "type": "object"
  },
  "objects.SimplePublicObject": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "archivedAt": {
     "format": "date-time",
     "type": "string"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "id": {
     "type": "string"
    },
    "objectWriteTraceId": {
     "type": "string"
    },
    "properties": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "propertiesWithHistory": {
     "additionalProperties": {
      "items": {
       "$ref": "objects.ValueWithTimestamp"
      },
      "type": "array"
     },
     "type": "object"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "url": {
     "type": "string"
    },
    "warnings": {
     "items": {
      "$ref": "objects.PublicObjectWarning"
     },
     "type": "array"
    }
   },
   "required": [
    "archived",
    "createdAt",
    "id",
    "properties",
    "updatedAt"
   ],
   "type": "object"
  },
  "objects.SimplePublicObjectId": {
   "properties": {
    "id": {
     "type": "string"
    }
   },
   "required": [
    "id"
   ],
   "type": "object"
  },
  "objects.SimplePublicObjectWithAssociations": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "archivedAt": {
     "format": "date-time",
     "type": "string"
    },
    "associations": {
     "additionalProperties": {
      "$ref": "objects.CollectionResponseAssociatedId"
     },
     "type": "object"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "id": {
     "type": "string"
    },
    "objectWriteTraceId": {
     "type": "string"
    },
    "properties": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "propertiesWithHistory": {
     "additionalProperties": {
      "items": {
       "$ref": "objects.ValueWithTimestamp"
      },
      "type": "array"
     },
     "type": "object"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "url": {
     "type": "string"
    },
    "warnings": {
     "items": {
      "$ref": "objects.PublicObjectWarning"
     },
     "type": "array"
    }
   },
   "required": [
    "archived",
    "createdAt",
    "id",
    "properties",
    "updatedAt"
   ],
   "type": "object"
  },
  "objects.StandardError": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "errors": {
     "items": {
      "$ref": "objects.ErrorDetail"
     },
     "type": "array"
    },
    "id": {
     "type": "string"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "status": {
     "type": "string"
    },
    "subCategory": {
     "properties": {},
     "type": "object"
    }
   },
   "required": [
    "category",
    "context",
    "errors",
    "links",
    "message",
    "status"
   ],
   "type": "object"
  },
  "objects.ValueWithTimestamp": {
   "properties": {
    "sourceId": {
     "type": "string"
    },
    "sourceLabel": {
     "type": "string"
    },
    "sourceType": {
     "type": "string"
    },
    "timestamp": {
     "format": "date-time",
     "type": "string"
    },
    "updatedByUserId": {
     "format": "int32",
     "type": "integer"
    },
    "value": {
     "type": "string"
    }
   },
   "required": [
    "sourceType",
    "timestamp",
    "value"
   ],
   "type": "object"
  },
  "owners.CollectionResponsePublicOwnerForwardPaging": {
   "properties": {
    "paging": {
     "$ref": "owners.ForwardPaging"
    },
    "results": {
     "items": {
      "$ref": "owners.PublicOwner"
     },
     "type": "array"
    }
   },
   "required": [
    "results"
   ],
   "type": "object"
  },
  "owners.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "owners.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "owners.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "owners.ForwardPaging": {
   "properties": {
    "next": {
     "$ref": "owners.NextPage"
    }
   },
   "type": "object"
  },
  "owners.NextPage": {
   "properties": {
    "after": {
     "type": "string"
    },
    "link": {
     "type": "string"
    }
   },
   "required": [
    "after"
   ],
   "type": "object"
  },
  "owners.PublicOwner": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "email": {
     "type": "string"
    },
    "firstName": {
     "type": "string"
    },
    "id": {
     "type": "string"
    },
    "lastName": {
     "type": "string"
    },
    "teams": {
     "items": {
      "$ref": "owners.PublicTeam"
     },
     "type": "array"
    },
    "type": {
     "enum": [
      "PERSON",
      "QUEUE"
     ],
     "type": "string"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "userId": {
     "format": "int32",
     "type": "integer"
    },
    "userIdIncludingInactive": {
     "format": "int32",
     "type": "integer"
    }
   },
   "required": [
    "archived",
    "createdAt",
    "id",
    "type",
    "updatedAt"
   ],
   "type": "object"
  },
  "owners.PublicTeam": {
   "properties": {
    "id": {
     "type": "string"
    },
    "name": {
     "type": "string"
    },
    "primary": {
     "type": "boolean"
    }
   },
   "required": [
    "id",
    "name",
    "primary"
   ],
   "type": "object"
  },
  "pipelines.CollectionResponsePipelineNoPaging": {
   "properties": {
    "results": {
     "items": {
      "$ref": "pipelines.Pipeline"
     },
     "type": "array"
    }
   },
   "required": [
    "results"
   ],
   "type": "object"
  },
  "pipelines.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "pipelines.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "pipelines.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "pipelines.Pipeline": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "archivedAt": {
     "format": "date-time",
     "type": "string"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "displayOrder": {
     "format": "int32",
     "type": "integer"
    },
    "id": {
     "type": "string"
    },
    "label": {
     "type": "string"
    },
    "stages": {
     "items": {
      "$ref": "pipelines.PipelineStage"
     },
     "type": "array"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    }
   },
   "required": [
    "archived",
    "createdAt",
    "displayOrder",
    "id",
    "label",
    "stages",
    "updatedAt"
   ],
   "type": "object"
  },
  "pipelines.PipelineStage": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "archivedAt": {
     "format": "date-time",
     "type": "string"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "displayOrder": {
     "format": "int32",
     "type": "integer"
    },
    "id": {
     "type": "string"
    },
    "label": {
     "type": "string"
    },
    "metadata": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "writePermissions": {
     "enum": [
      "CRM_PERMISSIONS_ENFORCEMENT",
      "INTERNAL_ONLY",
      "READ_ONLY"
     ],
     "type": "string"
    }
   },
   "required": [
    "archived",
    "createdAt",
    "displayOrder",
    "id",
    "label",
    "metadata",
    "updatedAt"
   ],
   "type": "object"
  },
  "properties.CollectionResponsePropertyNoPaging": {
   "properties": {
    "results": {
     "items": {
      "$ref": "properties.Property"
     },
     "type": "array"
    }
   },
   "required": [
    "results"
   ],
   "type": "object"
  },
  "properties.Error": {
   "properties": {
    "category": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "correlationId": {
     "format": "uuid",
     "type": "string"
    },
    "errors": {
     "items": {
      "$ref": "properties.ErrorDetail"
     },
     "type": "array"
    },
    "links": {
     "additionalProperties": {
      "type": "string"
     },
     "type": "object"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "category",
    "correlationId",
    "message"
   ],
   "type": "object"
  },
  "properties.ErrorDetail": {
   "properties": {
    "code": {
     "type": "string"
    },
    "context": {
     "additionalProperties": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "type": "object"
    },
    "in": {
     "type": "string"
    },
    "message": {
     "type": "string"
    },
    "subCategory": {
     "type": "string"
    }
   },
   "required": [
    "message"
   ],
   "type": "object"
  },
  "properties.Option": {
   "properties": {
    "description": {
     "type": "string"
    },
    "displayOrder": {
     "format": "int32",
     "type": "integer"
    },
    "hidden": {
     "type": "boolean"
    },
    "label": {
     "type": "string"
    },
    "value": {
     "type": "string"
    }
   },
   "required": [
    "hidden",
    "label",
    "value"
   ],
   "type": "object"
  },
  "properties.Property": {
   "properties": {
    "archived": {
     "type": "boolean"
    },
    "archivedAt": {
     "format": "date-time",
     "type": "string"
    },
    "calculated": {
     "type": "boolean"
    },
    "calculationFormula": {
     "type": "string"
    },
    "createdAt": {
     "format": "date-time",
     "type": "string"
    },
    "createdUserId": {
     "type": "string"
    },
    "currencyPropertyName": {
     "type": "string"
    },
    "dataSensitivity": {
     "enum": [
      "highly_sensitive",
      "non_sensitive",
      "sensitive"
     ],
     "type": "string"
    },
    "dateDisplayHint": {
     "enum": [
      "absolute",
      "absolute_with_relative",
      "time_since",
      "time_until"
     ],
     "type": "string"
    },
    "description": {
     "type": "string"
    },
    "displayOrder": {
     "format": "int32",
     "type": "integer"
    },
    "externalOptions": {
     "type": "boolean"
    },
    "fieldType": {
     "type": "string"
    },
    "formField": {
     "type": "boolean"
    },
    "groupName": {
     "type": "string"
    },
    "hasUniqueValue": {
     "type": "boolean"
    },
    "hidden": {
     "type": "boolean"
    },
    "hubspotDefined": {
     "type": "boolean"
    },
    "label": {
     "type": "string"
    },
    "modificationMetadata": {
     "$ref": "properties.PropertyModificationMetadata"
    },
    "name": {
     "type": "string"
    },
    "numberDisplayHint": {
     "enum": [
      "currency",
      "duration",
      "formatted",
      "percentage",
      "probability",
      "unformatted"
     ],
     "type": "string"
    },
    "options": {
     "items": {
      "$ref": "properties.Option"
     },
     "type": "array"
    },
    "referencedObjectType": {
     "type": "string"
    },
    "sensitiveDataCategories": {
     "items": {
      "type": "string"
     },
     "type": "array"
    },
    "showCurrencySymbol": {
     "type": "boolean"
    },
    "textDisplayHint": {
     "enum": [
      "domain_name",
      "email",
      "ip_address",
      "multi_line",
      "phone_number",
      "physical_address",
      "postal_code",
      "unformatted_single_line"
     ],
     "type": "string"
    },
    "type": {
     "type": "string"
    },
    "updatedAt": {
     "format": "date-time",
     "type": "string"
    },
    "updatedUserId": {
     "type": "string"
    }
   },
   "required": [
    "description",
    "fieldType",
    "groupName",
    "label",
    "name",
    "options",
    "type"
   ],
   "type": "object"
  },
  "properties.PropertyModificationMetadata": {
   "properties": {
    "archivable": {
     "type": "boolean"
    },
    "readOnlyDefinition": {
     "type": "boolean"
    },
    "readOnlyOptions": {
     "type": "boolean"
    },
    "readOnlyValue": {
     "type": "boolean"
    }
   },
   "required": [
    "archivable",
    "readOnlyDefinition",
    "readOnlyValue"
   ],
   "type": "object"
  }
 },
 "sources": {
  "account": "PublicApiSpecs/Account/Account Info/Rollouts/144923/v3/accountInfo.json",
  "associations": "PublicApiSpecs/CRM/Associations/Rollouts/130902/v4/associations.json",
  "emails": "PublicApiSpecs/Marketing/Marketing Emails/Rollouts/145892/v3/marketingEmails.json",
  "objects": "PublicApiSpecs/CRM/Objects/Rollouts/424/v3/objects.json",
  "owners": "PublicApiSpecs/CRM/Crm Owners/Rollouts/146888/v3/crmOwners.json",
  "pipelines": "PublicApiSpecs/CRM/Pipelines/Rollouts/145896/v3/pipelines.json",
  "properties": "PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json"
 }
}
"""

FACTS: dict[str, Any] = json.loads(_FACTS)
SOURCES: dict[str, str] = FACTS["sources"]  # file name -> path in the repository
OPERATIONS: list[dict[str, Any]] = FACTS["operations"]
SCHEMAS: dict[str, Any] = FACTS["schemas"]
